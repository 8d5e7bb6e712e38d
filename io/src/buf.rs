//! Page-aligned, zero-initialised buffers: what the ring reads into and
//! writes from.
//!
//! Alignment to 4096 bytes makes a buffer usable for `O_DIRECT` and keeps a
//! registered buffer to whole pages of pinned memory. A buffer owns its
//! allocation; the ring keeps every buffer it lent to the kernel until the
//! completion for it has arrived (see `ring.rs`).

use std::alloc::{self, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Alignment of every buffer: the page size of every Linux platform we run on.
pub const ALIGN: usize = 4096;

/// A fixed-size heap buffer aligned to [`ALIGN`], zeroed when allocated.
#[derive(Debug)]
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `AlignedBuf` uniquely owns its allocation, like `Box<[u8]>`; it has
// no interior mutability and no thread affinity.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[u8]`, like `Box<[u8]>`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes rounded up to a multiple of [`ALIGN`]
    /// (at least one page).
    ///
    /// # Panics
    /// On allocation failure (as `Vec` does) or when `len` rounded up
    /// overflows `isize`.
    pub fn new(len: usize) -> AlignedBuf {
        let len = len.max(1).div_ceil(ALIGN).saturating_mul(ALIGN);
        let Ok(layout) = Layout::from_size_align(len, ALIGN) else {
            panic!("an aligned buffer of {len} bytes is larger than the address space");
        };
        // SAFETY: `layout` has a non-zero size (at least ALIGN bytes).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        AlignedBuf { ptr, len }
    }

    /// The buffer's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a buffer holds at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of the allocation, for handing to the kernel.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The `iovec` describing the whole buffer, for registering it.
    pub(crate) fn iovec(&mut self) -> libc::iovec {
        libc::iovec {
            iov_base: self.ptr.as_ptr().cast(),
            iov_len: self.len,
        }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` initialised (zeroed at allocation)
        // bytes that this value owns; `&self` forbids concurrent mutation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // The layout was valid when allocating, so it is valid now.
        if let Ok(layout) = Layout::from_size_align(self.len, ALIGN) {
            // SAFETY: `ptr` came from `alloc_zeroed` with this same layout
            // and is freed only here, once.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_zeroed_and_rounded_to_pages() {
        let mut b = AlignedBuf::new(5000);
        assert_eq!(b.len(), 8192);
        assert_eq!(b.as_mut_ptr() as usize % ALIGN, 0);
        assert!(b.iter().all(|&x| x == 0));
        b[8191] = 7;
        assert_eq!(b[8191], 7);
        assert_eq!(AlignedBuf::new(0).len(), ALIGN);
    }
}
