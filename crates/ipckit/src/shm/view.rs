//! Places inside a mapped region where C objects live (a
//! `pthread_mutex_t`, a `sem_t`) or typed data: checked once, when an
//! object is opened, to lie inside the mapping and to be aligned, so that
//! the code that uses them does no pointer arithmetic of its own.

use super::region::Region;
use crate::error::{Error, ErrorKind, Result};

/// `len` bytes at `offset` of a region, in bounds and aligned (checked by
/// [`Region::view`]). A view is only used with the region it was made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct View {
    offset: usize,
    len: usize,
}

impl Region {
    /// The view of `len` bytes at `offset`, aligned to `align` (a power of
    /// two): `Corrupt` if the region is too small, `Invalid` if the offset
    /// is misaligned.
    pub(crate) fn view(&self, offset: usize, len: usize, align: usize) -> Result<View> {
        let fits = offset.checked_add(len).is_some_and(|end| end <= self.len());
        if !fits {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "open",
                self.name(),
                format!("{len} bytes at offset {offset} do not fit the {}-byte object", self.len()),
            ));
        }
        // The mapping is page-aligned: offset alignment is address alignment.
        if !align.is_power_of_two() || offset & (align - 1) != 0 {
            return Err(Error::new(
                ErrorKind::Invalid,
                "open",
                self.name(),
                format!("offset {offset} is not aligned to {align} bytes"),
            ));
        }
        Ok(View { offset, len })
    }

    /// The address of a view made by [`view`](Self::view) on this region.
    /// Using it is `unsafe` (other processes share the bytes); producing it
    /// is not.
    #[inline]
    pub(crate) fn ptr(&self, view: View) -> *mut u8 {
        assert!(view.offset + view.len <= self.len(), "a view is used with the region it was made for");
        self.as_ptr().wrapping_add(view.offset)
    }
}
