//! SMS test rig: a fake AT modem ([`fake`], with its own PDU codec [`pdu`]) and the real
//! ModemManager driving it ([`rig`]). No modem hardware, udev, polkit or root needed.
//!
//! ```no_run
//! # async fn demo(root: &std::path::Path) -> harness::Result<()> {
//! let mut rig = harness::modem::ModemRig::start(root, &root.join("modem"), 9).await?;
//! // clients: DBUS_SYSTEM_BUS_ADDRESS=rig.bus_address()
//! rig.deliver("+15550001111", "new message").await?;
//! rig.restart_modem_manager(10).await?;          // new object paths
//! # Ok(()) }
//! ```
//!
//! Needs (Debian): modemmanager (1.20, built with tests: `Test.SetProfile`), dbus-daemon.

pub mod fake;
pub mod pdu;
pub mod rig;

pub use fake::{initial_messages, FakeModem, Kind, Storage, Stored, TestMessage};
pub use rig::ModemRig;
