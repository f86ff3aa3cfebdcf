//! The Confluent wire format: magic byte `0`, the schema id as a 4-byte
//! big-endian integer, then the Avro binary body.

/// Length of the frame header.
pub const HEADER_LEN: usize = 5;
const MAGIC: u8 = 0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("record of {0} bytes is too short for the 5-byte Confluent header")]
    TooShort(usize),
    #[error("magic byte is {0}, expected 0")]
    Magic(u8),
}

/// Appends the 5-byte header for `schema_id`.
#[inline]
pub fn write_header(buf: &mut Vec<u8>, schema_id: u32) {
    buf.push(MAGIC);
    buf.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a framed record into its schema id and Avro body.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if bytes.len() < HEADER_LEN {
        return Err(WireError::TooShort(bytes.len()));
    }
    if bytes[0] != MAGIC {
        return Err(WireError::Magic(bytes[0]));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_round_trips(id in any::<u32>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut buf = Vec::new();
            write_header(&mut buf, id);
            buf.extend_from_slice(&body);
            prop_assert_eq!(split(&buf), Ok((id, &body[..])));
        }

        #[test]
        fn split_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = split(&bytes);
        }
    }

    #[test]
    fn rejects_bad_frames() {
        assert_eq!(split(&[0, 0, 0]), Err(WireError::TooShort(3)));
        assert_eq!(split(&[1, 0, 0, 0, 1]), Err(WireError::Magic(1)));
    }
}
