//! A content fingerprint of a Parquet file, for file-to-table exactly-once:
//! the same file gets the same fingerprint on every run and under any path
//! (a retried task may see it mounted elsewhere), and a rewritten file gets
//! another one.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::{Error, Result};

/// FNV-1a over the file's length and its footer (the Thrift metadata, which
/// holds every row group's size, offsets and statistics, plus the trailing
/// length and magic).
pub fn file_fingerprint(path: &Path) -> Result<u64> {
    let bad = |message: String| Error::Input {
        path: path.to_path_buf(),
        message,
    };
    let mut file = File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| bad(format!("cannot stat: {e}")))?
        .len();
    if len < 12 {
        return Err(bad(format!("{len} bytes is too short for a Parquet file")));
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::Start(len - 8))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| bad(format!("cannot read the footer: {e}")))?;
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len + 8 > len {
        return Err(bad(format!(
            "footer length {footer_len} does not fit in {len} bytes"
        )));
    }
    let mut footer = vec![0u8; footer_len as usize + 8];
    file.seek(SeekFrom::Start(len - 8 - footer_len))
        .and_then(|_| file.read_exact(&mut footer))
        .map_err(|e| bad(format!("cannot read the footer: {e}")))?;
    let mut bytes = len.to_le_bytes().to_vec();
    bytes.extend_from_slice(&footer);
    Ok(velostream_codecs::envelope::fnv1a64(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_parquet(body: &[u8], footer: &[u8]) -> Vec<u8> {
        let mut f = b"PAR1".to_vec();
        f.extend_from_slice(body);
        f.extend_from_slice(footer);
        f.extend_from_slice(&(footer.len() as u32).to_le_bytes());
        f.extend_from_slice(b"PAR1");
        f
    }

    #[test]
    fn same_content_same_fingerprint_anywhere_else_different() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("moved/b.parquet");
        std::fs::create_dir_all(b.parent().unwrap()).unwrap();
        std::fs::write(&a, fake_parquet(b"rows", b"meta")).unwrap();
        std::fs::write(&b, fake_parquet(b"rows", b"meta")).unwrap();
        assert_eq!(file_fingerprint(&a).unwrap(), file_fingerprint(&b).unwrap());
        std::fs::write(&b, fake_parquet(b"rows", b"mETa")).unwrap();
        assert_ne!(file_fingerprint(&a).unwrap(), file_fingerprint(&b).unwrap());
        std::fs::write(&b, fake_parquet(b"rowsX", b"meta")).unwrap();
        assert_ne!(
            file_fingerprint(&a).unwrap(),
            file_fingerprint(&b).unwrap(),
            "the length counts"
        );
    }

    #[test]
    fn damaged_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("short.parquet");
        std::fs::write(&p, b"PAR1").unwrap();
        let e = file_fingerprint(&p).unwrap_err().to_string();
        assert!(
            e.contains("short.parquet") && e.contains("too short"),
            "{e}"
        );
        std::fs::write(
            &p,
            fake_parquet(b"", b"")[..8]
                .iter()
                .chain(&[0xff, 0xff, 0xff, 0x7f])
                .chain(b"PAR1")
                .copied()
                .collect::<Vec<u8>>(),
        )
        .unwrap();
        let e = file_fingerprint(&p).unwrap_err().to_string();
        assert!(e.contains("does not fit"), "{e}");
    }
}
