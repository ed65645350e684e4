use super::*;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fresh path under the temp dir, unique per process and call.
fn temp_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("dlc-meta-{}-{n}-{name}", std::process::id()))
}

fn write(path: &Path, bytes: &[u8]) -> TestResult {
    std::fs::write(path, bytes)?;
    Ok(())
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, io::Error> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes)?;
    enc.finish()
}

/// An IDX file: magic, big-endian dims, and a zeroed payload.
fn idx_bytes(code: u8, dims: &[u32], elem_size: usize) -> Vec<u8> {
    let mut out = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    let n: usize = dims.iter().map(|&d| d as usize).product();
    out.resize(out.len() + n * elem_size, 0);
    out
}

fn idx_err(bytes: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
    let path = temp_path("bad.idx");
    write(&path, bytes)?;
    let result = read_idx_header(&path);
    std::fs::remove_file(&path)?;
    match result {
        Ok(h) => Err(format!("expected an error, got {h:?}").into()),
        Err(e) => {
            assert!(e.message.contains(&path.display().to_string()), "{e}");
            assert!(!e.message.contains('\n'), "{e}");
            Ok(e.message)
        }
    }
}

fn csv_schema(text: &str) -> Result<CsvSchema, Box<dyn std::error::Error>> {
    let path = temp_path("t.csv");
    write(&path, text.as_bytes())?;
    let result = scan_csv(&path);
    std::fs::remove_file(&path)?;
    Ok(result?)
}

fn csv_err(bytes: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
    let path = temp_path("bad.csv");
    write(&path, bytes)?;
    let result = scan_csv(&path);
    std::fs::remove_file(&path)?;
    match result {
        Ok(s) => Err(format!("expected an error, got {s:?}").into()),
        Err(e) => {
            assert!(e.message.contains(&path.display().to_string()), "{e}");
            assert!(!e.message.contains('\n'), "{e}");
            Ok(e.message)
        }
    }
}

#[test]
fn idx_u8_three_dims_plain() -> TestResult {
    let path = temp_path("images-idx3-ubyte");
    write(&path, &idx_bytes(0x08, &[5, 3, 2], 1))?;
    let h = read_idx_header(&path)?;
    std::fs::remove_file(&path)?;
    assert_eq!(
        h,
        IdxHeader {
            path: path.clone(),
            elem: IdxElem::U8,
            dims: vec![5, 3, 2],
            gzipped: false
        }
    );
    assert_eq!((h.elem.name(), h.elem.size()), ("u8", 1));
    Ok(())
}

#[test]
fn idx_u8_three_dims_gzipped_by_content_not_name() -> TestResult {
    // No .gz in the name: gzip must be recognised by the magic bytes.
    let path = temp_path("images-idx3-ubyte");
    write(&path, &gzip(&idx_bytes(0x08, &[5, 3, 2], 1))?)?;
    let h = read_idx_header(&path)?;
    std::fs::remove_file(&path)?;
    assert_eq!(
        (h.elem, h.dims, h.gzipped),
        (IdxElem::U8, vec![5, 3, 2], true)
    );
    Ok(())
}

#[test]
fn idx_falls_back_to_gz() -> TestResult {
    let path = temp_path("labels-idx1-ubyte");
    let gz = with_gz(&path);
    write(&gz, &gzip(&idx_bytes(0x08, &[7], 1))?)?;
    let h = read_idx_header(&path)?;
    std::fs::remove_file(&gz)?;
    assert_eq!(h.path, gz);
    assert_eq!((h.dims, h.gzipped), (vec![7], true));
    Ok(())
}

#[test]
fn idx_f32_one_dim() -> TestResult {
    let path = temp_path("floats-idx1");
    write(&path, &idx_bytes(0x0D, &[10], 4))?;
    let h = read_idx_header(&path)?;
    std::fs::remove_file(&path)?;
    assert_eq!((h.elem, h.dims), (IdxElem::F32, vec![10]));
    assert_eq!((h.elem.name(), h.elem.size()), ("f32", 4));
    Ok(())
}

#[test]
fn idx_bad_magic() -> TestResult {
    let mut bytes = idx_bytes(0x08, &[4], 1);
    bytes[0] = 0x50;
    assert!(idx_err(&bytes)?.contains("not an IDX file"));
    let bytes = idx_bytes(0x0A, &[4], 1);
    assert!(idx_err(&bytes)?.contains("unknown IDX element type code 0x0a"));
    Ok(())
}

#[test]
fn idx_dimension_count_and_zero_dims() -> TestResult {
    let bytes = idx_bytes(0x08, &[1, 1, 1, 1, 1], 1);
    assert!(idx_err(&bytes)?.contains("5 dimensions"));
    let bytes = idx_bytes(0x08, &[], 1);
    assert!(idx_err(&bytes)?.contains("0 dimensions"));
    let bytes = idx_bytes(0x08, &[3, 0], 1);
    assert!(idx_err(&bytes)?.contains("dimension 1 is zero"));
    Ok(())
}

#[test]
fn idx_truncated_header() -> TestResult {
    assert!(idx_err(&[0, 0])?.contains("truncated"));
    assert!(idx_err(&[])?.contains("truncated"));
    // Says 3 dims but holds only one and a half.
    assert!(idx_err(&[0, 0, 8, 3, 0, 0, 0, 2, 0, 0])?.contains("inside the dimensions"));
    // The same, gzipped.
    assert!(idx_err(&gzip(&[0, 0, 8, 3, 0, 0, 0, 2])?)?.contains("truncated"));
    Ok(())
}

#[test]
fn idx_length_mismatch_and_overflow() -> TestResult {
    let mut bytes = idx_bytes(0x0C, &[3, 2], 4);
    bytes.pop();
    assert!(idx_err(&bytes)?.contains("needs 36"));
    bytes.extend_from_slice(&[0, 0]);
    assert!(idx_err(&bytes)?.contains("is 37 bytes"));
    let huge = [
        0, 0, 0x0E, 4, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255,
    ];
    assert!(idx_err(&huge)?.contains("too large"));
    Ok(())
}

#[test]
fn idx_missing_file_names_both_paths() -> TestResult {
    let path = temp_path("absent-idx");
    let err = read_idx_header(&path).err().ok_or("expected an error")?;
    assert!(err.message.contains(&path.display().to_string()));
    assert!(err.message.contains(&with_gz(&path).display().to_string()));
    Ok(())
}

#[test]
fn idx_corrupt_gzip_is_an_error() -> TestResult {
    let msg = idx_err(&[0x1f, 0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
    assert!(msg.contains("cannot read IDX header"), "{msg}");
    Ok(())
}

#[test]
fn csv_numeric_and_categorical_with_missing() -> TestResult {
    let s = csv_schema("x,label,note,blank\n1,a,None,\nNA,b,NA,NA\n3.5,a,,\n-2,NA,7,\n")?;
    assert_eq!(s.rows, 4);
    assert_eq!(s.names(), vec!["x", "label", "note", "blank"]);
    let x = s.column("x").ok_or("no x")?;
    assert_eq!(x.missing, 1);
    assert_eq!(
        x.kind,
        ColumnKind::Numeric {
            min: -2.0,
            max: 3.5,
            mean: 2.5 / 3.0
        }
    );
    let label = s.column("label").ok_or("no label")?;
    assert_eq!(label.missing, 1);
    assert_eq!(
        label.kind,
        ColumnKind::Categorical {
            categories: vec!["a".into(), "b".into()]
        }
    );
    // "None" is a real value, not missing; a number among words is a category.
    let note = s.column("note").ok_or("no note")?;
    assert_eq!(note.missing, 2);
    assert_eq!(
        note.kind,
        ColumnKind::Categorical {
            categories: vec!["7".into(), "None".into()]
        }
    );
    let blank = s.column("blank").ok_or("no blank")?;
    assert_eq!(blank.missing, 4);
    assert_eq!(blank.kind, ColumnKind::Categorical { categories: vec![] });
    assert!(s.column("nope").is_none());
    Ok(())
}

#[test]
fn csv_non_finite_numbers_are_errors_and_spaced_numbers_are_categories() -> TestResult {
    // A column of numbers with one `nan`, `inf` or overflowing value is an
    // error naming its line and column, not a column of categories.
    for bad in ["nan", "inf", "-Infinity", "1e999", "NaN"] {
        let msg = csv_err(format!("a,b\n1,2\n{bad},3\n").as_bytes())?;
        assert!(
            msg.contains("line 3") && msg.contains("column `a`"),
            "{msg}"
        );
        assert!(
            msg.contains(bad) && msg.contains("not a finite number"),
            "{msg}"
        );
    }
    // Among words, `nan` is one more category; a spaced number is text.
    let s = csv_schema("a,b,c\nnan,1, 2\ncat,1e3,3\n")?;
    assert!(matches!(s.columns[0].kind, ColumnKind::Categorical { .. }));
    assert_eq!(
        s.columns[1].kind,
        ColumnKind::Numeric {
            min: 1.0,
            max: 1000.0,
            mean: 500.5
        }
    );
    assert!(matches!(s.columns[2].kind, ColumnKind::Categorical { .. }));
    Ok(())
}

#[test]
fn csv_header_only_and_bom_and_gz_fallback() -> TestResult {
    let s = csv_schema("\u{feff}a,b\n")?;
    assert_eq!((s.rows, s.names()), (0, vec!["a", "b"]));
    let path = temp_path("g.csv");
    let gz = with_gz(&path);
    write(&gz, &gzip(b"a,b\n1,x\n2,y\n")?)?;
    let s = scan_csv(&path);
    std::fs::remove_file(&gz)?;
    let s = s?;
    assert_eq!((s.path, s.rows), (gz, 2));
    Ok(())
}

#[test]
fn csv_wrong_field_count_names_the_line() -> TestResult {
    let msg = csv_err(b"a,b\n1,2\n3\n")?;
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("expected 2 fields"), "{msg}");
    let msg = csv_err(b"a,b\n1,2,3\n")?;
    assert!(msg.contains("line 2") && msg.contains("found 3"), "{msg}");
    Ok(())
}

#[test]
fn csv_duplicate_header() -> TestResult {
    let msg = csv_err(b"a,b,a\n1,2,3\n")?;
    assert!(msg.contains("duplicate column name \"a\""), "{msg}");
    Ok(())
}

#[test]
fn csv_empty_file_and_bad_utf8() -> TestResult {
    assert!(csv_err(b"")?.contains("no header row"));
    assert!(csv_err(&gzip(b"")?)?.contains("no header row"));
    let msg = csv_err(b"a,b\n1,\xff\xfe\n")?;
    assert!(msg.contains("invalid UTF-8"), "{msg}");
    assert!(msg.contains("line 2") && msg.contains("field 2"), "{msg}");
    assert!(csv_err(b"a,\xff\n1,2\n")?.contains("invalid UTF-8"));
    Ok(())
}

#[test]
fn csv_missing_file() -> TestResult {
    let path = temp_path("absent.csv");
    let err = scan_csv(&path).err().ok_or("expected an error")?;
    assert!(err.message.contains("absent.csv.gz"), "{err}");
    Ok(())
}

/// The datasets shipped with the example programs, when present.
#[test]
fn real_data_files() -> TestResult {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("programs/data");
    let images = data.join("fashion-mnist/train-images-idx3-ubyte");
    if with_gz(&images).exists() || images.exists() {
        let h = read_idx_header(&images)?;
        assert_eq!((h.elem, h.dims), (IdxElem::U8, vec![60000, 28, 28]));
    }
    let penguins = data.join("penguins.csv");
    if penguins.exists() {
        let s = scan_csv(&penguins)?;
        assert_eq!((s.rows, s.columns.len()), (344, 8));
        let species = s.column("species").ok_or("no species")?;
        assert!(
            matches!(&species.kind, ColumnKind::Categorical { categories } if categories.len() == 3),
            "{species:?}"
        );
        let bill = s.column("bill_length_mm").ok_or("no bill_length_mm")?;
        assert!(matches!(bill.kind, ColumnKind::Numeric { .. }), "{bill:?}");
        assert_eq!(bill.missing, 2);
        let sex = s.column("sex").ok_or("no sex")?;
        assert!(
            matches!(sex.kind, ColumnKind::Categorical { .. }),
            "{sex:?}"
        );
        assert_eq!(sex.missing, 11);
    }
    Ok(())
}
