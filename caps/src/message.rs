//! Params and results as bytes: one Cap'n Proto message per buffer, in the
//! standard stream framing with exactly one segment:
//!
//! ```text
//! u32 0 (segment count - 1) | u32 N (segment words) | N * 8 bytes of segment
//! ```
//!
//! An empty buffer (length 0, no buffer at all) reads as the struct with
//! every field at its default, and a struct with no fields is sent as an
//! empty buffer, so calls like `Timer.now()` need no params buffer and
//! `Timer.sleep` no results buffer.
//!
//! Decoding always copies into an aligned buffer of its own first: the
//! message is then the nucleus's (a guest thread cannot change it mid-read),
//! and its alignment no longer depends on the guest's addresses.
//!
//! Neither direction allocates message memory in the common case: messages
//! are built in one reusable, zeroed first segment ([`SCRATCH_WORDS`]; the
//! builder re-zeroes only the words it used) and read from one reusable
//! aligned buffer that grows to the largest message seen (capnp's builder
//! still keeps its list of segments in a small `Vec` of its own). Each is
//! taken for the length of one encode or decode; a nested one (an interrupt
//! handler's, another thread's) finds it taken and uses the heap instead, so
//! there is no lock to wait on.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use capnp::Word;
use capnp::message::{ReaderOptions, ScratchSpaceHeapAllocator};
use capnp::traits::Owned;
use spin::Mutex;

use crate::error::TransportError;
use crate::schema::exception_capnp::exception;
use crate::validate::MAX_MESSAGE_BYTES;

const MAX_BYTES: usize = MAX_MESSAGE_BYTES as usize;
const WORD: usize = 8;

/// Reading a message may visit at most this many words: a few times the
/// largest message, so a message whose pointers share targets cannot make
/// the nucleus do much more work than its size suggests.
const TRAVERSAL_LIMIT_WORDS: usize = 4 * MAX_BYTES / WORD;
/// Our schemas nest three deep at most.
const NESTING_LIMIT: i32 = 8;

/// A params or results struct of one of the schemas, as a plain Rust value.
pub trait Message: Sized {
    /// The generated Cap'n Proto struct.
    type Schema: Owned;

    /// A struct without fields: encoded as zero bytes.
    const NO_FIELDS: bool = false;

    /// A struct of numbers, Bools, Data and Text only, every default zero
    /// or empty, is direct: encoded as the exact bytes capnp's builder
    /// makes, from [`Message::to_direct`], and read with
    /// [`Message::from_direct`] when its layout is the plain one (anything
    /// else goes through capnp's reader): the common calls skip the
    /// builder's arena and the reader's pointer walk. Generated; tests
    /// hold both to capnp's. A direct struct's data words and pointers
    /// (both 0: not direct).
    const DIRECT_DATA_WORDS: usize = 0;
    const DIRECT_POINTERS: usize = 0;
    /// Bit i: pointer i is Text (NUL-terminated, UTF-8), not Data.
    const DIRECT_TEXTS: u32 = 0;

    /// ORs the numbers and Bools into `data` (`DIRECT_DATA_WORDS` zeroed
    /// words) and hands `blob` each Data and Text field, (pointer, bytes),
    /// in declaration order.
    fn to_direct(&self, _data: &mut [u64], _blob: &mut dyn FnMut(usize, &[u8])) {}

    /// The message from its data words (`DIRECT_DATA_WORDS` of them, words
    /// the sender's struct did not have being zero) and blobs (one per
    /// pointer, Text without its NUL); `None` if it is not direct or a
    /// Text is not UTF-8.
    fn from_direct(_data: &[u64], _blobs: &[&[u8]]) -> Option<Self> {
        None
    }

    fn write(&self, builder: <Self::Schema as Owned>::Builder<'_>) -> capnp::Result<()>;

    fn read(reader: <Self::Schema as Owned>::Reader<'_>) -> capnp::Result<Self>;

    /// Writes the message to the start of `out` and returns its length.
    /// `ResultsTooSmall` if it does not fit, `MessageTooLarge` if it would
    /// not fit in any buffer (more than [`MAX_MESSAGE_BYTES`]).
    fn encode(&self, out: &mut [u8]) -> Result<usize, TransportError> {
        let capacity = out.len();
        self.encode_in_parts(capacity, copy_to(out))
    }

    /// As [`Message::encode`] for a buffer of `capacity` bytes, handed to
    /// `write` in parts (see [`encode_parts_with`]).
    fn encode_in_parts(
        &self,
        capacity: usize,
        write: impl FnMut(&[u8], &[u8]),
    ) -> Result<usize, TransportError> {
        if Self::NO_FIELDS {
            return Ok(0);
        }
        if is_direct::<Self>() {
            return encode_direct(self, capacity, write);
        }
        encode_parts_with(capacity, |builder| self.write(builder.init_root()), write)
    }

    /// Reads a message from exactly `bytes`. `MalformedMessage` for anything
    /// that is not one single-segment message of this struct.
    fn decode(bytes: &[u8]) -> Result<Self, TransportError> {
        if is_direct::<Self>()
            && let Some(message) = decode_direct(bytes)?
        {
            return Ok(message);
        }
        decode_with::<Self::Schema, _>(bytes, Self::read)
    }
}

/// The largest sections written and read directly (larger structs take
/// capnp's builder and reader; the schemas have none).
const MAX_DIRECT_DATA_WORDS: usize = 8;
const MAX_DIRECT_POINTERS: usize = 4;

fn is_direct<M: Message>() -> bool {
    (M::DIRECT_DATA_WORDS, M::DIRECT_POINTERS) != (0, 0)
        && M::DIRECT_DATA_WORDS <= MAX_DIRECT_DATA_WORDS
        && M::DIRECT_POINTERS <= MAX_DIRECT_POINTERS
}

/// The reusable buffer direct messages are laid out in (taken for one
/// encode; a nested one uses the heap).
static DIRECT_SEGMENT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Runs `f` on `buffer`'s vector, taken for the call, or, when a nested
/// encode or decode holds it, on a fresh one: no lock is waited on.
fn with_reusable<T, R>(buffer: &Mutex<Vec<T>>, f: impl FnOnce(&mut Vec<T>) -> R) -> R {
    match buffer.try_lock() {
        Some(mut taken) => f(&mut taken),
        None => f(&mut Vec::new()),
    }
}

/// What a `write` of header and segment does for a buffer `out`.
fn copy_to(out: &mut [u8]) -> impl FnMut(&[u8], &[u8]) + '_ {
    |header, segment| {
        out[..WORD].copy_from_slice(header);
        out[WORD..WORD + segment.len()].copy_from_slice(segment);
    }
}

/// For a buffer of `capacity` bytes: how many segment words fit (the frame
/// header takes one word, the root pointer at least one more), and what a
/// message that does not fit answers. No buffer is larger than the largest
/// message: not fitting one that large means too large for any.
fn segment_capacity(capacity: usize) -> Result<(usize, TransportError), TransportError> {
    let usable = capacity.min(MAX_BYTES);
    let Some(words) = (usable / WORD).checked_sub(1).filter(|w| *w >= 1) else {
        return Err(TransportError::ResultsTooSmall);
    };
    let too_small = if capacity >= MAX_BYTES {
        TransportError::MessageTooLarge
    } else {
        TransportError::ResultsTooSmall
    };
    Ok((words, too_small))
}

/// Cap'n Proto's list pointer to `count` bytes starting `offset` words
/// after the pointer's own word ends.
fn byte_list_pointer(offset: usize, count: usize) -> u64 {
    1 | ((offset as u64) << 2) | (2 << 32) | ((count as u64) << 35)
}

/// A direct message as capnp's builder lays it out: the frame header, the
/// root struct pointer (offset 0), the data words, the pointers, then each
/// blob (Text with its NUL) padded to words, in the order `to_direct`
/// hands them over.
fn encode_direct<M: Message>(
    message: &M,
    capacity: usize,
    mut write: impl FnMut(&[u8], &[u8]),
) -> Result<usize, TransportError> {
    let (data_words, pointers) = (M::DIRECT_DATA_WORDS, M::DIRECT_POINTERS);
    // First pass: the data words, and each blob's pointer and size in the
    // order the builder would lay them out (the second pass copies them).
    let mut data = [0u64; MAX_DIRECT_DATA_WORDS];
    let mut sizes = [0usize; MAX_DIRECT_POINTERS];
    let mut order = [0usize; MAX_DIRECT_POINTERS];
    let mut blob_count = 0;
    message.to_direct(&mut data[..data_words], &mut |pointer, bytes| {
        sizes[pointer] = bytes.len();
        order[blob_count] = pointer;
        blob_count += 1;
    });
    let text = |pointer: usize| M::DIRECT_TEXTS & (1 << pointer) != 0;
    // The builder's own refusal of a field too large for any message.
    if sizes.iter().any(|&len| len > MAX_BYTES) {
        return Err(TransportError::MessageTooLarge);
    }
    let blob_words = |pointer: usize| (sizes[pointer] + text(pointer) as usize).div_ceil(WORD);
    let segment_words = 1
        + data_words
        + pointers
        + order[..blob_count]
            .iter()
            .map(|&p| blob_words(p))
            .sum::<usize>();
    let (capacity_words, too_small) = segment_capacity(capacity)?;
    if segment_words > capacity_words {
        return Err(too_small);
    }
    let segment_bytes = segment_words * WORD;
    let mut lay_out = |segment: &mut [u8]| {
        let root = (data_words as u64) << 32 | (pointers as u64) << 48;
        segment[..WORD].copy_from_slice(&root.to_le_bytes());
        for (i, word) in data[..data_words].iter().enumerate() {
            segment[(1 + i) * WORD..(2 + i) * WORD].copy_from_slice(&word.to_le_bytes());
        }
        if pointers > 0 {
            let mut next = 1 + data_words + pointers;
            let mut unused = [0u64; MAX_DIRECT_DATA_WORDS];
            message.to_direct(&mut unused[..data_words], &mut |pointer, bytes| {
                let at = 1 + data_words + pointer;
                let count = bytes.len() + text(pointer) as usize;
                let value = byte_list_pointer(next - (at + 1), count);
                segment[at * WORD..(at + 1) * WORD].copy_from_slice(&value.to_le_bytes());
                segment[next * WORD..next * WORD + bytes.len()].copy_from_slice(bytes);
                next += count.div_ceil(WORD);
            });
        }
        write(&frame_header(segment), segment);
    };
    // Small messages (most calls) on the stack, larger ones in the
    // reusable buffer (or, nested, on the heap); zeroed first: padding and
    // null pointers are zero. The stack buffer comes in two sizes so the
    // commonest messages (a few words: a time, a count) zero a few words,
    // not 256 bytes.
    const SMALL: usize = 64;
    const ON_STACK: usize = 256;
    if segment_bytes <= SMALL {
        let mut segment = [0u8; SMALL];
        lay_out(&mut segment[..segment_bytes]);
    } else if segment_bytes <= ON_STACK {
        let mut segment = [0u8; ON_STACK];
        lay_out(&mut segment[..segment_bytes]);
    } else {
        with_reusable(&DIRECT_SEGMENT, |segment| {
            segment.clear();
            segment.resize(segment_bytes, 0);
            lay_out(segment);
        });
    }
    Ok(WORD + segment_words * WORD)
}

/// A direct message read straight from its sections when its root is a
/// plain struct pointer inside the segment and each blob a plain byte list
/// inside it (what every encoder of these schemas writes); `Ok(None)` for
/// any other layout (far pointers, other lists, a Text without its NUL or
/// not UTF-8, ...), which capnp's reader then takes, and errors as capnp's
/// reader would answer them.
fn decode_direct<M: Message>(bytes: &[u8]) -> Result<Option<M>, TransportError> {
    let segment = segment_of(bytes)?;
    let segment_words = segment.len() / WORD;
    let word = |i: usize| {
        let at = i * WORD;
        u64::from_le_bytes(segment[at..at + WORD].try_into().expect("a word"))
    };
    let root = word(0);
    let mut data = [0u64; MAX_DIRECT_DATA_WORDS];
    let mut blobs: [&[u8]; MAX_DIRECT_POINTERS] = [&[]; MAX_DIRECT_POINTERS];
    if root != 0 {
        // A struct pointer: kind 0, a signed 30-bit word offset, then the
        // data and pointer section sizes.
        if root & 3 != 0 {
            return Ok(None);
        }
        let offset = (root as u32 as i32) >> 2;
        let (data_words, pointer_words) = ((root >> 32) as u16 as usize, (root >> 48) as usize);
        let Ok(start) = usize::try_from(1 + offset as isize) else {
            return Ok(None);
        };
        if start + data_words + pointer_words > segment_words {
            return Ok(None);
        }
        for (i, slot) in data
            .iter_mut()
            .enumerate()
            .take(data_words.min(M::DIRECT_DATA_WORDS))
        {
            *slot = word(start + i);
        }
        let mut visited = data_words + pointer_words;
        for (i, blob) in blobs
            .iter_mut()
            .enumerate()
            .take(pointer_words.min(M::DIRECT_POINTERS))
        {
            let at = start + data_words + i;
            let pointer = word(at);
            if pointer == 0 {
                continue;
            }
            // A list (kind 1) of bytes (element size 2).
            if pointer & 3 != 1 || (pointer >> 32) & 7 != 2 {
                return Ok(None);
            }
            let offset = (pointer as u32 as i32) >> 2;
            let count = (pointer >> 35) as usize;
            let Ok(target) = usize::try_from(at as isize + 1 + offset as isize) else {
                return Ok(None);
            };
            let words = count.div_ceil(WORD);
            visited += words;
            if target + words > segment_words || visited > TRAVERSAL_LIMIT_WORDS {
                return Ok(None);
            }
            let mut content = &segment[target * WORD..target * WORD + count];
            if M::DIRECT_TEXTS & (1 << i) != 0 {
                let Some((&0, text)) = content.split_last() else {
                    return Ok(None);
                };
                content = text;
            }
            *blob = content;
        }
    }
    Ok(M::from_direct(
        &data[..M::DIRECT_DATA_WORDS],
        &blobs[..M::DIRECT_POINTERS],
    ))
}

type Allocator = ScratchSpaceHeapAllocator<'static>;
type Builder = capnp::message::Builder<Allocator>;

/// Words of the reusable first segment: every message of the schemas but
/// bulk data (console text, entropy, Echo payloads) fits in far fewer.
pub const SCRATCH_WORDS: usize = 512;

/// The one reusable first segment (made on first use, kept for the
/// program's life).
enum Scratch {
    Unmade,
    Free(Allocator),
    /// An encode holds it.
    Taken,
}

static SCRATCH: Mutex<Scratch> = Mutex::new(Scratch::Unmade);

/// The scratch's allocator if it is free (`true`: give it back with
/// [`return_scratch`]), else one on the heap.
fn take_scratch() -> (Allocator, bool) {
    if let Some(mut scratch) = SCRATCH.try_lock() {
        match core::mem::replace(&mut *scratch, Scratch::Taken) {
            Scratch::Free(allocator) => return (allocator, true),
            Scratch::Unmade => {
                let words = Box::leak(Word::allocate_zeroed_vec(SCRATCH_WORDS).into_boxed_slice());
                return (
                    ScratchSpaceHeapAllocator::new(Word::words_to_bytes_mut(words)),
                    true,
                );
            }
            Scratch::Taken => {}
        }
    }
    (heap_allocator(SCRATCH_WORDS), false)
}

/// Gives the scratch back; the builder's drop has re-zeroed what it used.
/// (Whoever holds the lock holds it for a swap, never across an encode.)
fn return_scratch(allocator: Allocator) {
    *SCRATCH.lock() = Scratch::Free(allocator);
}

/// An allocator without scratch whose first segment has `words` words.
fn heap_allocator(words: usize) -> Allocator {
    // An empty scratch, aligned as a word (capnp checks it even when empty).
    let no_scratch: &'static mut [Word] = &mut [];
    ScratchSpaceHeapAllocator::new(Word::words_to_bytes_mut(no_scratch))
        .second_segment_words(words as u32)
}

/// Builds a message with `build` and hands `emit` its one segment: `None`
/// if it took more than one (it outgrew the first segment), `Err` if
/// building failed (a field too large for any message). Gives the
/// allocator back for reuse.
fn build_single_segment<T>(
    allocator: Allocator,
    build: &impl Fn(&mut Builder) -> capnp::Result<()>,
    emit: &mut impl FnMut(&[u8]) -> T,
) -> (Result<Option<T>, TransportError>, Allocator) {
    let mut message = Builder::new(allocator);
    let outcome = match build(&mut message) {
        Err(_) => Err(TransportError::MessageTooLarge),
        Ok(()) => match &message.get_segments_for_output()[..] {
            [segment] => Ok(Some(emit(segment))),
            _ => Ok(None),
        },
    };
    (outcome, message.into_allocator())
}

/// The framing and the single-segment rule around a message `build` makes,
/// written to the start of `out`; returns the length.
pub fn encode_with(
    out: &mut [u8],
    build: impl Fn(&mut Builder) -> capnp::Result<()>,
) -> Result<usize, TransportError> {
    let capacity = out.len();
    encode_parts_with(capacity, build, copy_to(out))
}

/// As [`encode_with`] for a buffer of `capacity` bytes, handing the message
/// to `write` as its two consecutive parts, the frame header and the
/// segment, so it can go straight to where it belongs. `write` is called
/// once if the message fits, never if it does not. The message is built in
/// the scratch segment first, then, if it outgrew it, in one segment as
/// large as the capacity.
pub fn encode_parts_with(
    capacity: usize,
    build: impl Fn(&mut Builder) -> capnp::Result<()>,
    mut write: impl FnMut(&[u8], &[u8]),
) -> Result<usize, TransportError> {
    let (capacity_words, too_small) = segment_capacity(capacity)?;
    let mut emit = |segment: &[u8]| {
        (segment.len() / WORD <= capacity_words).then(|| {
            write(&frame_header(segment), segment);
            WORD + segment.len()
        })
    };
    let (allocator, is_scratch) = take_scratch();
    let (outcome, allocator) = build_single_segment(allocator, &build, &mut emit);
    if is_scratch {
        return_scratch(allocator);
    }
    let written = match outcome? {
        Some(written) => written,
        // It outgrew a first segment at least as large as the capacity.
        None if capacity_words <= SCRATCH_WORDS => None,
        None => build_single_segment(heap_allocator(capacity_words), &build, &mut emit)
            .0?
            .flatten(),
    };
    written.ok_or(too_small)
}

/// The stream framing's header for one segment.
fn frame_header(segment: &[u8]) -> [u8; WORD] {
    let mut header = [0; WORD];
    header[4..].copy_from_slice(&((segment.len() / WORD) as u32).to_le_bytes());
    header
}

/// The reusable aligned buffer messages are read from: it grows to the
/// largest message seen and is never zeroed again.
static READ_BUFFER: Mutex<Vec<Word>> = Mutex::new(Vec::new());

/// Checks the framing of `bytes`, copies the segment into aligned memory of
/// our own, and hands `read` the root struct.
pub fn decode_with<S: Owned, R>(
    bytes: &[u8],
    read: impl FnOnce(S::Reader<'_>) -> capnp::Result<R>,
) -> Result<R, TransportError> {
    let segment_bytes = segment_of(bytes)?;
    let read_words = |words: &[Word]| {
        let segments = [Word::words_to_bytes(words)];
        let mut options = ReaderOptions::new();
        options
            .traversal_limit_in_words(Some(TRAVERSAL_LIMIT_WORDS))
            .nesting_limit(NESTING_LIMIT);
        let message = capnp::message::Reader::new(&segments[..], options);
        let root = message
            .get_root::<S::Reader<'_>>()
            .map_err(|_| TransportError::MalformedMessage)?;
        read(root).map_err(|_| TransportError::MalformedMessage)
    };
    let words = segment_bytes.len() / WORD;
    // Taken for this one read; a nested read copies to the heap instead.
    with_reusable(&READ_BUFFER, |buffer| {
        if buffer.len() < words {
            buffer.resize(words, capnp::word(0, 0, 0, 0, 0, 0, 0, 0));
        }
        let words = &mut buffer[..words];
        Word::words_to_bytes_mut(words).copy_from_slice(segment_bytes);
        read_words(words)
    })
}

/// The segment of a framed message (a message without a segment, for an
/// empty buffer, is one null root pointer: every field at its default).
/// `MalformedMessage` for anything but exactly one whole segment.
fn segment_of(bytes: &[u8]) -> Result<&[u8], TransportError> {
    const NULL_ROOT: [u8; WORD] = [0; WORD];
    if bytes.is_empty() {
        return Ok(&NULL_ROOT);
    }
    if bytes.len() > MAX_BYTES {
        return Err(TransportError::MessageTooLarge);
    }
    let malformed = TransportError::MalformedMessage;
    if bytes.len() < 2 * WORD || !bytes.len().is_multiple_of(WORD) {
        return Err(malformed);
    }
    let header_word =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (segments_minus_one, segment_words) = (header_word(0), header_word(4));
    if segments_minus_one != 0 || segment_words as usize != bytes.len() / WORD - 1 {
        return Err(malformed);
    }
    Ok(&bytes[WORD..])
}

/// Refuses to build a Data or Text field larger than any message could be.
pub(crate) fn check_len(len: usize) -> capnp::Result<u32> {
    if len > MAX_BYTES {
        return Err(capnp::Error::failed(String::from(
            "field larger than a message",
        )));
    }
    Ok(len as u32)
}

/// What went wrong in a service, by kind. Receivers read codes they do not
/// know as `Failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ExceptionCode {
    /// The service could not do it; the message says why.
    Failed = 1,
    /// Out of a resource for now; the same call may work later.
    Overloaded = 2,
    /// The object behind the capability is gone (its guest exited).
    Disconnected = 3,
    /// The method is in the schema but this service does not implement it.
    Unimplemented = 4,
    /// The params decoded, but their values are refused.
    InvalidArgument = 5,
    /// The appliance does not grant this (a name the guest may not serve
    /// or connect to, for instance).
    Denied = 6,
}

impl ExceptionCode {
    pub const ALL: [ExceptionCode; 6] = [
        ExceptionCode::Failed,
        ExceptionCode::Overloaded,
        ExceptionCode::Disconnected,
        ExceptionCode::Unimplemented,
        ExceptionCode::InvalidArgument,
        ExceptionCode::Denied,
    ];

    /// Unknown codes, 0 included, read as `Failed`.
    pub const fn from_u32(code: u32) -> ExceptionCode {
        match code {
            2 => ExceptionCode::Overloaded,
            3 => ExceptionCode::Disconnected,
            4 => ExceptionCode::Unimplemented,
            5 => ExceptionCode::InvalidArgument,
            6 => ExceptionCode::Denied,
            _ => ExceptionCode::Failed,
        }
    }
}

/// A service's failure, sent in the results buffer with the CQE's EXCEPTION flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    pub code: ExceptionCode,
    pub message: String,
    /// What went wrong, in the interface's own terms (0: nothing more to
    /// say); for Directory and File, a [`crate::FileError`].
    pub detail: u16,
}

impl Exception {
    pub fn new(code: ExceptionCode, message: &str) -> Exception {
        Exception {
            code,
            message: String::from(message),
            detail: 0,
        }
    }

    pub fn with_detail(code: ExceptionCode, detail: u16, message: &str) -> Exception {
        Exception {
            detail,
            ..Exception::new(code, message)
        }
    }

    /// Encodes the exception into `out`, cutting the message short (at a
    /// character boundary) if that is what it takes to fit: the caller
    /// learns the code even when its results buffer is small. Needs at least
    /// 32 bytes.
    pub fn encode_fitting(&self, out: &mut [u8]) -> Result<usize, TransportError> {
        match self.encode(out) {
            Err(TransportError::ResultsTooSmall | TransportError::MessageTooLarge) => {}
            done => return done,
        }
        // header, root pointer, one data word, one pointer, then the text
        // and its NUL padded to a word.
        let fixed = 4 * WORD;
        let room = out.len().min(MAX_BYTES).saturating_sub(fixed) / WORD * WORD;
        let mut keep = room.saturating_sub(1).min(self.message.len());
        while !self.message.is_char_boundary(keep) {
            keep -= 1;
        }
        let shortened = Exception {
            message: String::from(&self.message[..keep]),
            ..self.clone()
        };
        match shortened.encode(out) {
            Ok(len) => Ok(len),
            Err(_) => ExceptionWithoutMessage(self.code, self.detail).encode(out),
        }
    }
}

impl Message for Exception {
    type Schema = exception::Owned;

    fn write(&self, mut builder: exception::Builder<'_>) -> capnp::Result<()> {
        check_len(self.message.len())?;
        builder.set_code(self.code as u32);
        builder.set_detail(self.detail);
        builder.set_message(self.message.as_str());
        Ok(())
    }

    fn read(reader: exception::Reader<'_>) -> capnp::Result<Self> {
        Ok(Exception {
            code: ExceptionCode::from_u32(reader.get_code()),
            detail: reader.get_detail(),
            message: if reader.has_message() {
                String::from(reader.get_message()?.to_str()?)
            } else {
                String::new()
            },
        })
    }
}

/// The smallest form of an exception: the code and a null message pointer,
/// 32 bytes with the frame header.
struct ExceptionWithoutMessage(ExceptionCode, u16);

impl ExceptionWithoutMessage {
    fn encode(&self, out: &mut [u8]) -> Result<usize, TransportError> {
        encode_with(out, |message| {
            let mut root = message.init_root::<exception::Builder<'_>>();
            root.set_code(self.0 as u32);
            root.set_detail(self.1);
            Ok(())
        })
    }
}

/// What visits every direct message type of the schemas (the generated
/// `interfaces::visit_direct_messages`), for the tests.
#[cfg(test)]
pub(crate) trait DirectVisitor {
    fn visit<M: Message + PartialEq + core::fmt::Debug>(&mut self, name: &str);
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::interfaces::{boot_info, console, entropy, guest_control, timer};
    use proptest::prelude::*;
    use std::vec;

    fn encoded<M: Message>(message: &M) -> Vec<u8> {
        let mut out = vec![0; MAX_BYTES];
        let len = message.encode(&mut out).unwrap();
        out.truncate(len);
        out
    }

    #[test]
    fn frames_hold_one_segment() {
        let bytes = encoded(&timer::NowResults { nanos: 0x1122_3344 });
        // Header, root pointer, one data word.
        assert_eq!(bytes.len(), 24);
        assert_eq!(bytes[..8], [0, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(bytes[16..], 0x1122_3344u64.to_le_bytes());
        // Any Cap'n Proto library reads it.
        let message =
            capnp::serialize::read_message_from_flat_slice(&mut &bytes[..], ReaderOptions::new())
                .unwrap();
        let root: crate::schema::timer_capnp::timer::now_results::Reader<'_> =
            message.get_root().unwrap();
        assert_eq!(root.get_nanos(), 0x1122_3344);
    }

    #[test]
    fn structs_without_fields_are_empty_and_empty_reads_as_default() {
        assert_eq!(encoded(&timer::NowParams), Vec::<u8>::new());
        assert_eq!(timer::SleepResults.encode(&mut []), Ok(0));
        assert_eq!(timer::NowParams::decode(&[]), Ok(timer::NowParams));
        assert_eq!(
            timer::SleepParams::decode(&[]),
            Ok(timer::SleepParams { nanos: 0 })
        );
        assert_eq!(
            console::WriteParams::decode(&[]),
            Ok(console::WriteParams::default())
        );
        assert_eq!(
            boot_info::GetResults::decode(&[]),
            Ok(boot_info::GetResults::default())
        );
        // A full message of an empty struct reads too.
        let empty_struct = [0, 0, 0, 0, 1, 0, 0, 0, 0xfc, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(
            timer::NowParams::decode(&empty_struct),
            Ok(timer::NowParams)
        );
    }

    #[test]
    fn framing_errors_are_malformed() {
        let good = encoded(&timer::SleepParams { nanos: 5 });
        assert_eq!(
            timer::SleepParams::decode(&good),
            Ok(timer::SleepParams { nanos: 5 })
        );
        let malformed = Err(TransportError::MalformedMessage);
        assert_eq!(
            timer::SleepParams::decode(&good[..8]),
            malformed,
            "header only"
        );
        assert_eq!(
            timer::SleepParams::decode(&good[..20]),
            malformed,
            "not whole words"
        );
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0; 8]);
        assert_eq!(
            timer::SleepParams::decode(&trailing),
            malformed,
            "bytes after the message"
        );
        let mut two_segments = good.clone();
        two_segments[0] = 1;
        assert_eq!(timer::SleepParams::decode(&two_segments), malformed);
        let mut wrong_count = good.clone();
        wrong_count[4] = 7;
        assert_eq!(timer::SleepParams::decode(&wrong_count), malformed);
        let mut list_root = good.clone();
        list_root[8] = 1; // pointer kind 1: a list where a struct belongs
        assert_eq!(timer::SleepParams::decode(&list_root), malformed);
        let mut far_out = good;
        far_out[8..16].copy_from_slice(&(0x0001_0000_0000_0400u64).to_le_bytes());
        assert_eq!(
            timer::SleepParams::decode(&far_out),
            malformed,
            "struct beyond the segment"
        );
        assert_eq!(
            timer::SleepParams::decode(&vec![0; MAX_BYTES + 8]),
            Err(TransportError::MessageTooLarge)
        );
    }

    #[test]
    fn text_must_be_utf8() {
        let mut bytes = encoded(&Exception::new(ExceptionCode::Failed, "abc"));
        let at = bytes.windows(3).position(|w| w == b"abc").unwrap();
        bytes[at] = 0xff;
        assert_eq!(
            Exception::decode(&bytes),
            Err(TransportError::MalformedMessage)
        );
    }

    #[test]
    fn results_that_do_not_fit() {
        let results = timer::NowResults { nanos: 1 };
        let mut exact = [0; 24];
        assert_eq!(results.encode(&mut exact), Ok(24));
        assert_eq!(
            results.encode(&mut [0; 23]),
            Err(TransportError::ResultsTooSmall)
        );
        assert_eq!(
            results.encode(&mut [0; 8]),
            Err(TransportError::ResultsTooSmall)
        );
        assert_eq!(
            results.encode(&mut []),
            Err(TransportError::ResultsTooSmall)
        );

        let big = entropy::FillResults {
            bytes: vec![7; 60_000],
        };
        let bytes = encoded(&big);
        assert_eq!(bytes.len(), 8 + 8 + 8 + 60_000);
        assert_eq!(entropy::FillResults::decode(&bytes), Ok(big.clone()));
        let mut short = vec![0; bytes.len() - 8];
        assert_eq!(big.encode(&mut short), Err(TransportError::ResultsTooSmall));
        let too_big = entropy::FillResults {
            bytes: vec![7; MAX_BYTES + 1],
        };
        assert_eq!(
            too_big.encode(&mut vec![0; 2 * MAX_BYTES]),
            Err(TransportError::MessageTooLarge)
        );
        let almost = entropy::FillResults {
            bytes: vec![7; MAX_BYTES - 24],
        };
        assert_eq!(almost.encode(&mut vec![0; 2 * MAX_BYTES]), Ok(MAX_BYTES));
        let over = entropy::FillResults {
            bytes: vec![7; MAX_BYTES - 23],
        };
        assert_eq!(
            over.encode(&mut vec![0; 2 * MAX_BYTES]),
            Err(TransportError::MessageTooLarge)
        );
    }

    #[test]
    fn exceptions_shrink_to_fit() {
        let exception = Exception::new(
            ExceptionCode::InvalidArgument,
            "length 1000000 is more than 65536",
        );
        let full = encoded(&exception);
        assert_eq!(full.len(), 32 + 40);
        assert_eq!(Exception::decode(&full), Ok(exception.clone()));

        let mut out = [0; 48];
        let len = exception.encode_fitting(&mut out).unwrap();
        assert_eq!(len, 48);
        let cut = Exception::decode(&out[..len]).unwrap();
        assert_eq!(cut.code, ExceptionCode::InvalidArgument);
        assert_eq!(cut.message, "length 1000000 ");

        // Cut at a character boundary.
        let accented = Exception::new(ExceptionCode::Failed, "ééééééééé");
        let mut out = [0; 40];
        let len = accented.encode_fitting(&mut out).unwrap();
        assert_eq!(Exception::decode(&out[..len]).unwrap().message, "ééé");

        let mut smallest = [0; 32];
        let len = exception.encode_fitting(&mut smallest).unwrap();
        assert_eq!(len, 32);
        assert_eq!(
            Exception::decode(&smallest),
            Ok(Exception::new(ExceptionCode::InvalidArgument, ""))
        );
        assert_eq!(
            exception.encode_fitting(&mut [0; 31]),
            Err(TransportError::ResultsTooSmall)
        );
    }

    /// The message through `encode_in_parts`, gathered into a `Vec`.
    fn in_parts<M: Message>(message: &M) -> Result<Vec<u8>, TransportError> {
        let mut bytes = Vec::new();
        message.encode_in_parts(MAX_BYTES, |header, segment| {
            bytes = [header, segment].concat();
        })?;
        Ok(bytes)
    }

    /// What capnp's own serializer makes of the same message, built on the
    /// heap in one segment: the reference for the scratch-built bytes.
    fn reference_bytes(message: &console::WriteParams) -> Vec<u8> {
        let mut builder = capnp::message::Builder::new(
            capnp::message::HeapAllocator::new().first_segment_words((MAX_BYTES / WORD) as u32),
        );
        message.write(builder.init_root()).unwrap();
        capnp::serialize::write_message_to_words(&builder)
    }

    #[test]
    fn encodings_match_capnps_serializer() {
        for len in [0, 1, 7, 8, 100, SCRATCH_WORDS * WORD, 20_000] {
            let message = console::WriteParams {
                text: vec![b'x'; len],
            };
            let bytes = in_parts(&message).unwrap();
            assert_eq!(bytes, encoded(&message), "length {len}");
            assert_eq!(bytes, reference_bytes(&message), "length {len}");
        }
        assert_eq!(in_parts(&timer::NowParams), Ok(Vec::new()));
        let too_big = entropy::FillResults {
            bytes: vec![7; MAX_BYTES],
        };
        assert_eq!(in_parts(&too_big), Err(TransportError::MessageTooLarge));
    }

    #[test]
    fn encoding_in_parts_gives_the_same_bytes() {
        for len in [0, 5, 3000] {
            let message = console::WriteParams {
                text: vec![b'p'; len],
            };
            let mut parts = Vec::new();
            let written = message.encode_in_parts(MAX_BYTES, |header, segment| {
                parts = [header, segment].concat();
            });
            assert_eq!(written, Ok(encoded(&message).len()));
            assert_eq!(parts, encoded(&message));
        }
        let mut wrote = false;
        let big = console::WriteParams { text: vec![1; 100] };
        assert_eq!(
            big.encode_in_parts(64, |_, _| wrote = true),
            Err(TransportError::ResultsTooSmall)
        );
        assert!(!wrote, "nothing is written when it does not fit");
        assert_eq!(
            timer::SleepResults.encode_in_parts(0, |_, _| wrote = true),
            Ok(0)
        );
        assert!(!wrote);
    }

    #[test]
    fn a_nested_encode_or_decode_uses_the_heap() {
        let message = console::WriteParams { text: vec![3; 40] };
        let expected = encoded(&message);
        // As an interrupt handler would find them: taken.
        let (held, is_scratch) = take_scratch();
        let guard = READ_BUFFER.lock();
        assert_eq!(in_parts(&message).unwrap(), expected);
        assert_eq!(console::WriteParams::decode(&expected), Ok(message.clone()));
        drop(guard);
        if is_scratch {
            return_scratch(held);
        }
        assert_eq!(in_parts(&message).unwrap(), expected);
    }

    #[test]
    fn unknown_exception_codes_read_as_failed() {
        assert_eq!(ExceptionCode::from_u32(0), ExceptionCode::Failed);
        assert_eq!(ExceptionCode::from_u32(99), ExceptionCode::Failed);
        for code in ExceptionCode::ALL {
            assert_eq!(ExceptionCode::from_u32(code as u32), code);
        }
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex(".{0,40}").unwrap()
    }

    fn info() -> impl Strategy<Value = boot_info::Info> {
        (
            any::<[u64; 4]>(),
            any::<u32>(),
            proptest::collection::vec(text(), 0..8),
        )
            .prop_map(|(n, cpu_count, features)| boot_info::Info {
                boot_nanos: n[0],
                memory_total_bytes: n[1],
                memory_free_bytes: n[2],
                cpu_count,
                tsc_hz: n[3],
                features,
            })
    }

    /// Encodes into a buffer of exactly the message's size, checks one byte
    /// less is refused, and decodes it back.
    fn round_trip<M: Message + PartialEq + core::fmt::Debug>(
        message: M,
    ) -> Result<(), TestCaseError> {
        let bytes = encoded(&message);
        prop_assert_eq!(bytes.len() % 8, 0);
        let mut exact = vec![0; bytes.len()];
        prop_assert_eq!(message.encode(&mut exact), Ok(bytes.len()));
        if !bytes.is_empty() {
            let mut short = vec![0; bytes.len() - 1];
            prop_assert_eq!(
                message.encode(&mut short),
                Err(TransportError::ResultsTooSmall)
            );
        }
        prop_assert_eq!(M::decode(&bytes), Ok(message));
        Ok(())
    }

    proptest! {
        #[test]
        fn every_message_round_trips(
            bytes in proptest::collection::vec(any::<u8>(), 0..3000),
            words in any::<[u64; 2]>(),
            small in any::<u32>(),
            code in any::<i32>(),
            info in info(),
            message in text(),
            exception_code in 1u32..6,
        ) {
            round_trip(console::WriteParams { text: bytes.clone() })?;
            round_trip(console::WriteResults { written: small })?;
            round_trip(timer::NowParams)?;
            round_trip(timer::NowResults { nanos: words[0] })?;
            round_trip(timer::SleepParams { nanos: words[1] })?;
            round_trip(timer::SleepResults)?;
            round_trip(entropy::FillParams { length: small })?;
            round_trip(entropy::FillResults { bytes })?;
            round_trip(boot_info::GetParams)?;
            round_trip(boot_info::GetResults { info })?;
            round_trip(guest_control::ExitParams { code })?;
            round_trip(guest_control::ExitResults)?;
            round_trip(guest_control::RegionParams)?;
            round_trip(guest_control::RegionResults { base: words[0], size: words[1] })?;
            round_trip(Exception { code: ExceptionCode::from_u32(exception_code), message, detail: exception_code as u16 })?;
        }

        /// The reused scratch segment is clean for every message after
        /// another, large or small: each encodes as capnp's serializer would.
        #[test]
        fn consecutive_encodes_match_the_reference(
            lengths in proptest::collection::vec(0usize..6000, 1..12),
        ) {
            for len in lengths {
                let message = console::WriteParams { text: vec![0xa5; len] };
                let bytes = in_parts(&message).unwrap();
                prop_assert_eq!(&bytes, &reference_bytes(&message));
                prop_assert_eq!(console::WriteParams::decode(&bytes), Ok(message));
            }
        }

        /// Whatever a guest puts in a params buffer: a value or
        /// `MalformedMessage`, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..512),
            framed in any::<bool>(),
        ) {
            if framed && bytes.len() >= 16 {
                // A valid header, so the segment contents get exercised.
                let len = bytes.len() / 8 * 8;
                bytes.truncate(len);
                bytes[..4].copy_from_slice(&0u32.to_le_bytes());
                bytes[4..8].copy_from_slice(&((len / 8 - 1) as u32).to_le_bytes());
            }
            let ok_or_malformed = |e: TransportError| e == TransportError::MalformedMessage;
            prop_assert!(console::WriteParams::decode(&bytes).err().is_none_or(ok_or_malformed));
            prop_assert!(timer::SleepParams::decode(&bytes).err().is_none_or(ok_or_malformed));
            prop_assert!(entropy::FillResults::decode(&bytes).err().is_none_or(ok_or_malformed));
            prop_assert!(boot_info::GetResults::decode(&bytes).err().is_none_or(ok_or_malformed));
            prop_assert!(guest_control::RegionResults::decode(&bytes).err().is_none_or(ok_or_malformed));
            prop_assert!(Exception::decode(&bytes).err().is_none_or(ok_or_malformed));
        }
    }

    /// A segment of words, framed as one message.
    fn framed(segment: &[u64]) -> Vec<u8> {
        let mut bytes = Vec::from(frame_header(&vec![0u8; segment.len() * WORD]));
        for word in segment {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    /// What capnp's reader makes of `bytes`, the reference for `decode`.
    fn capnp_decode<M: Message>(bytes: &[u8]) -> Result<M, TransportError> {
        decode_with::<M::Schema, _>(bytes, M::read)
    }

    /// Holds every direct message's encoding to capnp's builder, and its
    /// reading to capnp's reader, over many values and layouts.
    struct DirectAgainstCapnp {
        state: u64,
        types: usize,
        with_blobs: usize,
    }

    impl DirectAgainstCapnp {
        fn next(&mut self) -> u64 {
            // xorshift64*: plenty for spreading bits over the fields.
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// Blob contents: lengths around word boundaries, UTF-8 for Text.
        fn blob(&mut self, round: usize, text: bool) -> Vec<u8> {
            const LENGTHS: [usize; 8] = [0, 1, 7, 8, 9, 15, 16, 100];
            let len = if round < LENGTHS.len() {
                LENGTHS[round]
            } else {
                (self.next() % 300) as usize
            };
            (0..len)
                .map(|_| {
                    let b = self.next() as u8;
                    if text { b' ' + b % 95 } else { b }
                })
                .collect()
        }
    }

    impl DirectVisitor for DirectAgainstCapnp {
        fn visit<M: Message + PartialEq + core::fmt::Debug>(&mut self, name: &str) {
            self.types += 1;
            let (n, p) = (M::DIRECT_DATA_WORDS, M::DIRECT_POINTERS);
            assert!(is_direct::<M>(), "{name}: {n} data words, {p} pointers");
            if p > 0 {
                self.with_blobs += 1;
            }
            let is_text = |i: usize| M::DIRECT_TEXTS & (1 << i) != 0;
            for round in 0..200 {
                let words: Vec<u64> = (0..n)
                    .map(|_| if round == 0 { 0 } else { self.next() })
                    .collect();
                let blobs: Vec<Vec<u8>> = (0..p).map(|i| self.blob(round, is_text(i))).collect();
                let blob_refs: Vec<&[u8]> = blobs.iter().map(|b| &b[..]).collect();
                let message = M::from_direct(&words, &blob_refs).expect("a direct message");
                let direct = encoded(&message);
                let mut general = vec![0; MAX_BYTES];
                let len = encode_with(&mut general, |b| message.write(b.init_root())).unwrap();
                assert_eq!(
                    direct,
                    general[..len],
                    "{name}: the bytes capnp's builder makes"
                );
                assert_eq!(in_parts(&message).unwrap(), direct, "{name}: in parts");
                assert_eq!(M::decode(&direct).as_ref(), Ok(&message), "{name}");
                // Every buffer too small for it answers as the builder's path.
                for capacity in (0..direct.len()).step_by(1 + direct.len() / 40) {
                    let mut out = vec![0; capacity];
                    let mut reference = vec![0; capacity];
                    assert_eq!(
                        message.encode(&mut out),
                        encode_with(&mut reference, |b| message.write(b.init_root())),
                        "{name}: capacity {capacity}"
                    );
                }
                // Layouts other encoders may write, and broken ones: the
                // direct read agrees with capnp's reader on each.
                let segment: Vec<u64> = direct[WORD..]
                    .chunks_exact(WORD)
                    .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
                    .collect();
                let data = |i: usize| words.get(i).copied().unwrap_or(0);
                for gap in [0u64, 1] {
                    for data_words in [0, n.saturating_sub(1), n, n + 2] {
                        for pointers in [0, p, p + 1] {
                            // The original blobs and pointers, moved: each
                            // pointer's offset grows by what was put between.
                            let root = (gap << 2)
                                | ((data_words as u64) << 32)
                                | ((pointers as u64) << 48);
                            let mut out = vec![root];
                            out.extend((0..gap).map(|_| self.next()));
                            out.extend(
                                (0..data_words).map(|i| if i < n { data(i) } else { self.next() }),
                            );
                            let blobs_at = 1 + n + p;
                            let new_blobs_at = 1 + gap as usize + data_words + pointers;
                            for i in 0..pointers {
                                let old = segment
                                    .get(1 + n + i)
                                    .copied()
                                    .filter(|_| i < p)
                                    .unwrap_or(0);
                                let moved = if old & 3 == 1 {
                                    let offset = (old as u32 as i32) >> 2;
                                    let target = (1 + n + i) as i64 + 1 + offset as i64;
                                    let here = (new_blobs_at - pointers + i) as i64;
                                    let new_target = target - blobs_at as i64 + new_blobs_at as i64;
                                    (old & !0xffff_fffc)
                                        | ((((new_target - here - 1) as i32) << 2) as u32 as u64)
                                } else {
                                    old
                                };
                                out.push(moved);
                            }
                            out.extend_from_slice(&segment[blobs_at.min(segment.len())..]);
                            let bytes = framed(&out);
                            assert_eq!(
                                M::decode(&bytes),
                                capnp_decode::<M>(&bytes),
                                "{name}: segment {out:x?}"
                            );
                            // With every field still there, it is the message.
                            if data_words >= n && pointers >= p {
                                assert_eq!(
                                    M::decode(&bytes).as_ref(),
                                    Ok(&message),
                                    "{name}: segment {out:x?}"
                                );
                            }
                            // Cut short by a word.
                            if out.len() > 1 {
                                let bytes = framed(&out[..out.len() - 1]);
                                assert_eq!(
                                    M::decode(&bytes),
                                    capnp_decode::<M>(&bytes),
                                    "{name}: short {out:x?}"
                                );
                            }
                        }
                    }
                }
                // Broken blob pointers: other element sizes, far, out of
                // bounds, a Text without its NUL or not UTF-8.
                for (i, blob) in blobs.iter().enumerate() {
                    let at = 1 + n + i;
                    let original = segment[at];
                    for bad in [
                        original ^ (1 << 32),
                        (original & !3) | 2,
                        original.wrapping_add(1 << 35),
                        original.wrapping_add(1000 << 2),
                        original | 3,
                    ] {
                        let mut out = segment.clone();
                        out[at] = bad;
                        let bytes = framed(&out);
                        assert_eq!(
                            M::decode(&bytes),
                            capnp_decode::<M>(&bytes),
                            "{name}: pointer {bad:#x}"
                        );
                    }
                    // Overwrite a Text's NUL, or a Data's last byte, with
                    // a letter and with a byte that is not UTF-8.
                    let offset = (original as u32 as i32) >> 2;
                    let target = (at as i64 + 1 + offset as i64) as usize;
                    let last = if is_text(i) {
                        Some(blob.len())
                    } else {
                        blob.len().checked_sub(1)
                    };
                    if let Some(last) = last {
                        for value in [b'x', 0xff] {
                            let mut raw: Vec<u8> = framed(&segment);
                            raw[WORD + target * WORD + last] = value;
                            assert_eq!(
                                M::decode(&raw),
                                capnp_decode::<M>(&raw),
                                "{name}: byte {value:#x}"
                            );
                        }
                    }
                }
                for root in [
                    0,
                    1 | (1 << 32),
                    2 | (3 << 32),
                    (-4i32 as u32 as u64) | (1 << 32),
                    3,
                ] {
                    let bytes = framed(&[root, self.next(), self.next()]);
                    assert_eq!(
                        M::decode(&bytes),
                        capnp_decode::<M>(&bytes),
                        "{name}: root {root:#x}"
                    );
                }
                assert_eq!(M::decode(&[]), capnp_decode::<M>(&[]), "{name}: no bytes");
            }
        }
    }

    #[test]
    fn direct_messages_are_what_capnp_makes_and_reads() {
        let mut check = DirectAgainstCapnp {
            state: 0x9e37_79b9_7f4a_7c15,
            types: 0,
            with_blobs: 0,
        };
        crate::interfaces::visit_direct_messages(&mut check);
        // Timer's, Console's, Entropy's, Echo's at least.
        assert!(check.types >= 10, "only {} direct messages", check.types);
        assert!(
            check.with_blobs >= 3,
            "only {} with Data or Text",
            check.with_blobs
        );
    }

    proptest! {
        #[test]
        fn direct_reading_agrees_with_capnps_on_any_segment(
            segment in proptest::collection::vec(any::<u64>(), 1..8),
            tweak in 0usize..8,
        ) {
            let mut segment = segment;
            // Now and then a plausible root (a struct pointer, offset 0)
            // and byte-list pointers, to get past the first checks.
            if tweak < 4 {
                segment[0] = (segment[0] & 0xffff_0000_0000_0000 & (3 << 48)) | (1 << 32) | (1 << 48);
                if let Some(w) = segment.get_mut(2) {
                    *w = (*w & !0x7_ffff_ffff) | 1 | (2 << 32) | ((tweak as u64) << 2);
                }
            }
            let bytes = framed(&segment);
            prop_assert_eq!(timer::NowResults::decode(&bytes), capnp_decode::<timer::NowResults>(&bytes));
            prop_assert_eq!(entropy::FillParams::decode(&bytes), capnp_decode::<entropy::FillParams>(&bytes));
            prop_assert_eq!(console::WriteParams::decode(&bytes), capnp_decode::<console::WriteParams>(&bytes));
        }
    }
}
