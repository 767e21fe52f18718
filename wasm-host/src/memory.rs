//! Bounds-checked access to a guest's linear memory.
//!
//! Every guest pointer and length passes through here: a range that does
//! not lie wholly inside memory is `EFAULT`, and a record pointer that is
//! not aligned to its record is `EINVAL`, as WASI specifies (and wasmtime
//! does). Nothing here can panic, whatever the numbers.

use core::ops::Range;

use crate::errno::Errno;

/// A guest's linear memory for the length of one import call.
pub struct GuestMemory<'a> {
    bytes: &'a mut [u8],
}

impl<'a> GuestMemory<'a> {
    pub fn new(bytes: &'a mut [u8]) -> GuestMemory<'a> {
        GuestMemory { bytes }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The byte range `ptr..ptr + len`, if it lies inside memory.
    pub fn range(&self, ptr: u32, len: u32) -> Result<Range<usize>, Errno> {
        self.range_u64(u64::from(ptr), u64::from(len))
    }

    /// As [`GuestMemory::range`], for lengths computed from counts (which
    /// can exceed `u32`).
    pub fn range_u64(&self, ptr: u64, len: u64) -> Result<Range<usize>, Errno> {
        let end = ptr.checked_add(len).ok_or(Errno::Fault)?;
        let memory_len = u64::try_from(self.bytes.len()).map_err(|_| Errno::Fault)?;
        if end > memory_len {
            return Err(Errno::Fault);
        }
        // Both fit in usize: they are at most the memory's length.
        let start = usize::try_from(ptr).map_err(|_| Errno::Fault)?;
        let end = usize::try_from(end).map_err(|_| Errno::Fault)?;
        Ok(start..end)
    }

    /// The range of an array of `count` records of `size` bytes aligned to
    /// `align`: `EINVAL` when misaligned, `EFAULT` when outside memory.
    pub fn record_range(
        &self,
        ptr: u32,
        size: u32,
        count: u32,
        align: u32,
    ) -> Result<Range<usize>, Errno> {
        if align > 1 && !ptr.is_multiple_of(align) {
            return Err(Errno::Inval);
        }
        self.range_u64(u64::from(ptr), u64::from(size) * u64::from(count))
    }

    pub fn slice(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        let range = self.range(ptr, len)?;
        Ok(&self.bytes[range])
    }

    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        let range = self.range(ptr, len)?;
        Ok(&mut self.bytes[range])
    }

    /// The whole memory, for callers that checked a range themselves.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.bytes
    }

    /// A UTF-8 string argument (a path): `EILSEQ` when not UTF-8, as WASI
    /// strings must be.
    pub fn str(&self, ptr: u32, len: u32) -> Result<&str, Errno> {
        core::str::from_utf8(self.slice(ptr, len)?).map_err(|_| Errno::IlSeq)
    }

    fn array<const N: usize>(&self, ptr: u32) -> Result<[u8; N], Errno> {
        let range = self.record_range(ptr, N as u32, 1, N as u32)?;
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[range]);
        Ok(out)
    }

    fn put<const N: usize>(&mut self, ptr: u32, value: [u8; N]) -> Result<(), Errno> {
        let range = self.record_range(ptr, N as u32, 1, N as u32)?;
        self.bytes[range].copy_from_slice(&value);
        Ok(())
    }

    pub fn read_u8(&self, ptr: u32) -> Result<u8, Errno> {
        Ok(self.array::<1>(ptr)?[0])
    }

    pub fn read_u16(&self, ptr: u32) -> Result<u16, Errno> {
        Ok(u16::from_le_bytes(self.array(ptr)?))
    }

    pub fn read_u32(&self, ptr: u32) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.array(ptr)?))
    }

    pub fn read_u64(&self, ptr: u32) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.array(ptr)?))
    }

    pub fn write_u8(&mut self, ptr: u32, value: u8) -> Result<(), Errno> {
        self.put(ptr, [value])
    }

    pub fn write_u16(&mut self, ptr: u32, value: u16) -> Result<(), Errno> {
        self.put(ptr, value.to_le_bytes())
    }

    pub fn write_u32(&mut self, ptr: u32, value: u32) -> Result<(), Errno> {
        self.put(ptr, value.to_le_bytes())
    }

    pub fn write_u64(&mut self, ptr: u32, value: u64) -> Result<(), Errno> {
        self.put(ptr, value.to_le_bytes())
    }

    /// Checks that a `u32` result can be stored at `ptr`, before a call has
    /// side effects it could not report.
    pub fn check_u32(&self, ptr: u32) -> Result<(), Errno> {
        self.record_range(ptr, 4, 1, 4).map(drop)
    }

    /// As [`GuestMemory::check_u32`], for a `u16` result.
    pub fn check_u16(&self, ptr: u32) -> Result<(), Errno> {
        self.record_range(ptr, 2, 1, 2).map(drop)
    }

    /// As [`GuestMemory::check_u32`], for a `u64` result.
    pub fn check_u64(&self, ptr: u32) -> Result<(), Errno> {
        self.record_range(ptr, 8, 1, 8).map(drop)
    }
}

/// A little-endian record being filled in, written to memory in one go.
pub struct Record<const N: usize>(pub [u8; N]);

impl<const N: usize> Record<N> {
    pub fn new() -> Record<N> {
        Record([0; N])
    }

    fn set<const M: usize>(&mut self, offset: usize, bytes: [u8; M]) {
        if let Some(field) = self.0.get_mut(offset..offset + M) {
            field.copy_from_slice(&bytes);
        }
    }

    pub fn u8(&mut self, offset: usize, value: u8) -> &mut Self {
        self.set(offset, [value]);
        self
    }

    pub fn u16(&mut self, offset: usize, value: u16) -> &mut Self {
        self.set(offset, value.to_le_bytes());
        self
    }

    pub fn u32(&mut self, offset: usize, value: u32) -> &mut Self {
        self.set(offset, value.to_le_bytes());
        self
    }

    pub fn u64(&mut self, offset: usize, value: u64) -> &mut Self {
        self.set(offset, value.to_le_bytes());
        self
    }
}

impl<const N: usize> Default for Record<N> {
    fn default() -> Self {
        Record::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_inside_memory_are_allowed_up_to_the_last_byte() {
        let mut bytes = [0u8; 16];
        let memory = GuestMemory::new(&mut bytes);
        assert_eq!(memory.range(0, 16), Ok(0..16));
        assert_eq!(memory.range(16, 0), Ok(16..16));
        assert_eq!(memory.range(15, 1), Ok(15..16));
    }

    #[test]
    fn ranges_past_the_end_or_wrapping_are_efault() {
        let mut bytes = [0u8; 16];
        let memory = GuestMemory::new(&mut bytes);
        assert_eq!(memory.range(15, 2), Err(Errno::Fault));
        assert_eq!(memory.range(17, 0), Err(Errno::Fault));
        assert_eq!(memory.range(u32::MAX, u32::MAX), Err(Errno::Fault));
        assert_eq!(memory.range_u64(u64::MAX, 1), Err(Errno::Fault));
    }

    #[test]
    fn misaligned_records_are_einval_before_bounds() {
        let mut bytes = [0u8; 64];
        let memory = GuestMemory::new(&mut bytes);
        assert_eq!(memory.read_u32(2), Err(Errno::Inval));
        assert_eq!(memory.read_u64(4), Err(Errno::Inval));
        assert_eq!(memory.read_u64(1000), Err(Errno::Fault));
        assert_eq!(memory.record_range(8, 8, 3, 8), Ok(8..32));
        assert_eq!(memory.record_range(8, 8, 8, 8), Err(Errno::Fault));
        assert_eq!(
            memory.record_range(0, u32::MAX, u32::MAX, 8),
            Err(Errno::Fault)
        );
    }

    #[test]
    fn integers_are_little_endian() {
        let mut bytes = [0u8; 16];
        let mut memory = GuestMemory::new(&mut bytes);
        memory.write_u64(8, 0x0102_0304_0506_0708).unwrap();
        memory.write_u16(2, 0xabcd).unwrap();
        assert_eq!(memory.read_u32(8), Ok(0x0506_0708));
        assert_eq!(memory.read_u8(2), Ok(0xcd));
        assert_eq!(bytes[8..16], [8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn strings_must_be_utf8() {
        let mut bytes = *b"ok\xff";
        let memory = GuestMemory::new(&mut bytes);
        assert_eq!(memory.str(0, 2), Ok("ok"));
        assert_eq!(memory.str(0, 3), Err(Errno::IlSeq));
    }
}
