//! Small, valid PNG images made in code (no image library): RGB, 8 bit,
//! zlib stream of stored (uncompressed) deflate blocks. Each seed gives
//! different pixels, so every contact photo has distinct bytes.

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// zlib stream with stored deflate blocks (valid for any inflater).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(65535).collect() };
    for (i, b) in blocks.iter().enumerate() {
        out.push(if i + 1 == blocks.len() { 1 } else { 0 }); // BFINAL, BTYPE=00
        let len = b.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// A `width` x `height` RGB PNG with a pattern derived from `seed`.
pub fn png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut rng = crate::vcard::Rng::new(seed ^ 0x9E37_79B9_7F4A_7C15);
    let base = [rng.next_u64() as u8, rng.next_u64() as u8, rng.next_u64() as u8];
    let step = [(rng.next_u64() % 31) as u8 + 1, (rng.next_u64() % 31) as u8 + 1, (rng.next_u64() % 31) as u8 + 1];
    let mut raw = Vec::with_capacity(((width * 3 + 1) * height) as usize);
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            for c in 0..3 {
                raw.push(base[c].wrapping_add(step[c].wrapping_mul((x + 2 * y) as u8)) ^ ((x * y) as u8 & 0x0F));
            }
        }
    }
    // a few seed bytes in the first pixels make every image distinct
    for (i, b) in seed.to_le_bytes().iter().enumerate() {
        raw[1 + i] = *b;
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, filter 0, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Structural check: signature, chunk CRCs, IHDR first, IEND last.
pub fn is_valid_png(b: &[u8]) -> bool {
    if b.len() < 8 || &b[..8] != b"\x89PNG\r\n\x1a\n" {
        return false;
    }
    let mut i = 8;
    let mut first = true;
    while i + 12 <= b.len() {
        let len = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        if i + 12 + len > b.len() {
            return false;
        }
        let kind = &b[i + 4..i + 8];
        let crc = u32::from_be_bytes(b[i + 8 + len..i + 12 + len].try_into().unwrap());
        if crc32(&b[i + 4..i + 8 + len]) != crc || (first && kind != b"IHDR") {
            return false;
        }
        first = false;
        i += 12 + len;
        if kind == b"IEND" {
            return i == b.len();
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc_of_iend() {
        assert_eq!(super::crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn pngs_are_valid_and_distinct() {
        let a = super::png(16, 16, 1);
        let b = super::png(16, 16, 2);
        assert!(super::is_valid_png(&a) && super::is_valid_png(&b));
        assert_ne!(a, b);
    }
}
