#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| imsync_fuzz::wbxml_decode(data));
