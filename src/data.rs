//! Data files as the compiler sees them before any tensor exists.
//!
//! `data` owns reading what is inside the dataset files a program names
//! (IDX image/label files, CSV tables), plain or gzipped. Invariant: nothing
//! here panics on any input; every failure is an error that names the file.
//! [`meta`] reads only metadata (shapes, element types, column schemas) and
//! never materialises a payload.

pub mod load;
pub mod meta;
pub mod npy;
pub mod prep;
pub mod synthetic;
pub mod table;
