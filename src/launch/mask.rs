//! `--mask`: the child's stdout and stderr pass through envoke, with every resolved value
//! replaced by `****`.
//!
//! # Which values
//! The values of references, resolved (also those given to the child as files); not the
//! manifest's literals, which are configuration written in plain text (masking `info` would
//! mangle every log line that says it). A value is masked as it is and, when it has leading or
//! trailing whitespace, also without it (a shell's `$(...)` drops a trailing newline). A value
//! with fewer than [`MIN_MASKED_LEN`] bytes once trimmed is not masked: `1` or `on` would turn
//! every occurrence in the output into `****`; envoke warns, naming the variable. Only verbatim
//! occurrences are caught, not encoded ones (base64, JSON or URL escapes).
//!
//! Each variable keeps its current value and the one before it: after a rotation the old
//! child's last output, or a child that was only signalled and still holds the old value, is
//! masked too, and the set stays bounded however often secrets rotate.
//!
//! # Streaming
//! [`Masker`] sees the output in the chunks the pipe gives. It replaces the leftmost, longest
//! value at each position, and writes everything up to the first position where it cannot yet
//! tell whether a value starts there: the tail it holds back is a proper prefix of some value
//! (so nothing, when a chunk ends in a newline and no value holds one). So a value split across
//! two reads is masked, a line is never held back, and the result is exactly that of masking the
//! whole stream at once (a property test).
//!
//! # Pumps
//! Each stream of each child has a pump task: the read end of a pipe made here, non-blocking in
//! tokio; the masked chunks go to envoke's own stdout or stderr on tokio's blocking pool, so a
//! slow reader of envoke's output never stalls the supervisor. A pump ends when its pipe closes
//! (the child and everything it started are gone). When supervision ends,
//! [`OutputMask::finish`] has every pump read what is still in its pipe (everything the reaped
//! child wrote), write it, and stop, even if a leftover process still holds the pipe. A pump
//! whose writes fail (envoke's stdout was closed) closes its pipe, so the child sees the broken
//! pipe it would have seen without `--mask`.
//!
//! # Memory
//! The values live here, in zeroizing buffers, for as long as the child runs: with `--mask`,
//! envoke's memory holds values after launch (SECURITY.md).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use aho_corasick::{AhoCorasick, Input, MatchKind};
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// What a value is replaced with.
const MASK: &[u8] = b"****";
/// Values shorter than this (without leading and trailing whitespace) are not masked.
pub const MIN_MASKED_LEN: usize = 3;
/// How much a pump reads at a time.
const READ_SIZE: usize = 64 * 1024;
/// How many reads a pump makes, at most, to empty its pipe once supervision ended: a leftover
/// process that keeps writing cannot hold envoke up.
const FINAL_READS: usize = 64;

/// The set of values to mask, ready for matching.
pub struct Patterns {
    /// Leftmost-longest matching of every value at once: linear in the output, whatever the
    /// values (a value whose prefix repeats in the output made a per-position comparison with
    /// each value quadratic: 28 s for 20 MB). Its pattern copies are wiped on free, as every
    /// heap block is (main.rs).
    matcher: Option<AhoCorasick>,
    /// Distinct values, sorted by their bytes: whether a stream's tail is a proper prefix of
    /// some value is one binary search.
    values: Vec<Zeroizing<Vec<u8>>>,
    /// The longest value's length.
    longest: usize,
}

impl Default for Patterns {
    fn default() -> Self {
        Patterns::new([])
    }
}

impl Patterns {
    /// The patterns for these values, by the rules in the module doc; values too short to mask
    /// are left out.
    fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Patterns {
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for value in values {
            let trimmed = value.trim_ascii();
            if trimmed.len() < MIN_MASKED_LEN {
                continue;
            }
            for candidate in [value, trimmed] {
                if !patterns.iter().any(|p| p.as_slice() == candidate) {
                    patterns.push(Zeroizing::new(candidate.to_vec()));
                }
            }
        }
        patterns.sort_by(|a, b| a.as_slice().cmp(b.as_slice()));
        let matcher = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|p| p.as_slice()))
                .expect("a set of byte strings makes an automaton")
        });
        Patterns {
            matcher,
            longest: patterns.iter().map(|p| p.len()).max().unwrap_or(0),
            values: patterns,
        }
    }

    /// Whether `tail` is a proper prefix of some value (a value may begin there, and the rest
    /// of it has not been read yet).
    fn begins_a_value(&self, tail: &[u8]) -> bool {
        // The values that begin with `tail` come right after it in sorted order: the first of
        // them, or the one after `tail` itself when it is a value too.
        let at = self.values.partition_point(|v| v.as_slice() < tail);
        self.values[at..]
            .iter()
            .take(2)
            .any(|v| v.len() > tail.len() && v.starts_with(tail))
    }

    /// The first position at or after `from` where a value may begin but `input` ends before it
    /// can tell; `input.len()` when there is none. Only the last `longest - 1` bytes can be one.
    fn pending(&self, input: &[u8], from: usize) -> usize {
        let window = input.len().saturating_sub(self.longest.saturating_sub(1));
        (from.max(window)..input.len())
            .find(|&at| self.begins_a_value(&input[at..]))
            .unwrap_or(input.len())
    }

    /// Masks `input`; returns how much of it was consumed. Without `end`, stops where a value
    /// may begin but the input ends before it can tell (the rest is a proper prefix of a value);
    /// with `end`, the input is the end of the stream and all of it is consumed.
    ///
    /// A match that starts before the first such position is final: a longer value starting at
    /// or before it would make that start itself such a position. So matches are taken up to
    /// it, and when one runs past it, the search for the next such position goes on after it.
    /// Unmasked bytes are copied a whole span at a time.
    fn mask(&self, input: &[u8], end: bool, out: &mut Vec<u8>) -> usize {
        let Some(matcher) = &self.matcher else {
            out.extend_from_slice(input);
            return input.len();
        };
        // input[..copied] is in `out`.
        let mut copied = 0;
        loop {
            let cut = if end {
                input.len()
            } else {
                self.pending(input, copied)
            };
            let mut crossed = false;
            for found in matcher.find_iter(Input::new(input).span(copied..input.len())) {
                if found.start() >= cut {
                    break;
                }
                out.extend_from_slice(&input[copied..found.start()]);
                out.extend_from_slice(MASK);
                copied = found.end();
                if copied > cut {
                    crossed = true;
                    break;
                }
            }
            if !crossed {
                out.extend_from_slice(&input[copied..cut]);
                return cut;
            }
        }
    }
}

/// Masks one stream, chunk by chunk (see the module doc).
#[derive(Default)]
pub struct Masker {
    /// What was read but not written yet: a proper prefix of some value.
    held: Zeroizing<Vec<u8>>,
}

impl Masker {
    /// Masks `chunk`, the next bytes of the stream; appends what can be written now to `out`
    /// (a pump reuses one buffer: an allocation per read cost the static build a third of its
    /// throughput, musl's allocator mapping and unmapping each one).
    pub fn push(&mut self, chunk: &[u8], patterns: &Patterns, out: &mut Vec<u8>) {
        if self.held.is_empty() {
            let used = patterns.mask(chunk, false, out);
            self.held.extend_from_slice(&chunk[used..]);
        } else {
            let mut input = Zeroizing::new(std::mem::take(&mut *self.held));
            input.extend_from_slice(chunk);
            let used = patterns.mask(&input, false, out);
            self.held.extend_from_slice(&input[used..]);
        }
    }

    /// The stream ended: masks and returns what was held back.
    pub fn finish(&mut self, patterns: &Patterns) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.held.len());
        patterns.mask(&self.held, true, &mut out);
        self.held.clear();
        out
    }
}

/// A variable's value now and the one before it.
struct Generations {
    current: Zeroizing<Vec<u8>>,
    previous: Option<Zeroizing<Vec<u8>>>,
}

/// The masking of every child's output: the values, shared by every pump, and the pumps.
/// No `Debug`: it holds values.
pub struct OutputMask {
    values: Mutex<BTreeMap<String, Generations>>,
    patterns: watch::Sender<Arc<Patterns>>,
    closing: watch::Sender<bool>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

impl Default for OutputMask {
    fn default() -> Self {
        OutputMask {
            values: Mutex::default(),
            patterns: watch::Sender::new(Arc::default()),
            closing: watch::Sender::new(false),
            pumps: Mutex::default(),
        }
    }
}

impl OutputMask {
    /// Takes these variables' values as what the child now has; a value it replaces stays
    /// masked until it is replaced in turn. Call before the child can print the new values.
    pub fn update<'a>(&self, values: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
        let mut known = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, value) in values {
            if known
                .get(name)
                .is_some_and(|g| g.current.as_slice() == value)
            {
                continue;
            }
            if value.trim_ascii().len() < MIN_MASKED_LEN {
                tracing::warn!(
                    variable = name,
                    "the value is shorter than {MIN_MASKED_LEN} bytes, too short to mask: --mask leaves it visible"
                );
            }
            let current = Zeroizing::new(value.to_vec());
            let previous = known.remove(name).map(|g| g.current);
            known.insert(name.to_owned(), Generations { current, previous });
        }
        let patterns = Patterns::new(known.values().flat_map(|g| {
            std::iter::once(g.current.as_slice()).chain(g.previous.as_deref().map(Vec::as_slice))
        }));
        self.patterns.send_replace(Arc::new(patterns));
    }

    /// Gives `command` a pipe for stdout and one for stderr, with a pump behind each. Must run
    /// inside the tokio runtime. The pipes' write ends live in `command`: drop it after spawning
    /// (or failing to), so the pumps see the end of the output.
    pub fn redirect(&self, command: &mut Command) -> io::Result<()> {
        let (stdout_reader, stdout) = pipe_pair()?;
        let (stderr_reader, stderr) = pipe_pair()?;
        command.stdout(stdout).stderr(stderr);
        let mut pumps = self.pumps.lock().unwrap_or_else(PoisonError::into_inner);
        pumps.retain(|pump| !pump.is_finished());
        for (reader, sink) in [(stdout_reader, Sink::Stdout), (stderr_reader, Sink::Stderr)] {
            pumps.push(tokio::spawn(pump(
                reader,
                sink,
                self.patterns.subscribe(),
                self.closing.subscribe(),
            )));
        }
        Ok(())
    }

    /// Supervision ended (every child was reaped): each pump writes what is left in its pipe,
    /// and stops. Returns when everything is written.
    pub async fn finish(&self) {
        self.closing.send_replace(true);
        let pumps = std::mem::take(&mut *self.pumps.lock().unwrap_or_else(PoisonError::into_inner));
        futures::future::join_all(pumps).await;
    }
}

/// A pipe: the read end for a pump, the write end for the child. Close-on-exec, so no other
/// child inherits either end; the child's copy of the write end becomes its stdout or stderr
/// (dup2 clears the flag there).
fn pipe_pair() -> io::Result<(pipe::Receiver, Stdio)> {
    let (read, write) = crate::platform::pipe_cloexec()?;
    Ok((pipe::Receiver::from_owned_fd(read)?, Stdio::from(write)))
}

/// One of envoke's own output streams.
#[derive(Debug, Clone, Copy)]
enum Sink {
    Stdout,
    Stderr,
}

impl Sink {
    /// Writes all of `bytes`, on the blocking pool (a terminal or pipe may be slow to take them).
    /// Gives the buffer back, emptied, for the next chunk.
    async fn write(self, mut bytes: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        if bytes.is_empty() {
            return (Ok(()), bytes);
        }
        let written = tokio::task::spawn_blocking(move || {
            let result = match self {
                Sink::Stdout => {
                    let mut out = io::stdout().lock();
                    out.write_all(&bytes).and_then(|()| out.flush())
                }
                Sink::Stderr => io::stderr().lock().write_all(&bytes),
            };
            bytes.clear();
            (result, bytes)
        });
        written
            .await
            .unwrap_or_else(|e| (Err(io::Error::other(e)), Vec::new()))
    }
}

/// Copies one pipe to `sink`, masked, until the pipe closes, a write fails, or `closing` says
/// supervision ended (then what is in the pipe now is still copied).
async fn pump(
    reader: pipe::Receiver,
    sink: Sink,
    patterns: watch::Receiver<Arc<Patterns>>,
    mut closing: watch::Receiver<bool>,
) {
    let mut masker = Masker::default();
    let mut buffer = Zeroizing::new(vec![0; READ_SIZE]);
    // The masked output: values replaced, so nothing in it needs zeroing.
    let mut out = Vec::with_capacity(2 * READ_SIZE);
    let mut final_reads = None;
    loop {
        let read = match final_reads {
            Some(0) => break,
            Some(left) => {
                final_reads = Some(left - 1);
                // Straight from the pipe: tokio's readiness may not have seen the last writes.
                match nix::unistd::read(&reader, &mut buffer) {
                    Err(nix::errno::Errno::EAGAIN) => break,
                    read => read.map_err(io::Error::from),
                }
            }
            None => tokio::select! {
                ready = reader.readable() => ready.and_then(|()| reader.try_read(&mut buffer)),
                _ = closing.wait_for(|closing| *closing) => {
                    final_reads = Some(FINAL_READS);
                    continue;
                }
            },
        };
        let chunk = match read {
            Ok(0) => break,
            Ok(n) => &buffer[..n],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => {
                tracing::warn!(stream = ?sink, %error, "cannot read the command's output");
                break;
            }
        };
        let current = Arc::clone(&patterns.borrow());
        masker.push(chunk, &current, &mut out);
        let written;
        (written, out) = sink.write(out).await;
        if let Err(error) = written {
            tracing::debug!(stream = ?sink, %error, "cannot write the command's output; closing its pipe");
            return;
        }
    }
    let current = Arc::clone(&patterns.borrow());
    let rest = masker.finish(&current);
    if let (Err(error), _) = sink.write(rest).await {
        tracing::debug!(stream = ?sink, %error, "cannot write the command's output");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn patterns(values: &[&str]) -> Patterns {
        Patterns::new(values.iter().map(|v| v.as_bytes()))
    }

    /// Masks `chunks` as a pump would, asserting that what is held back is always a proper
    /// prefix of a value.
    fn mask_chunks(patterns: &Patterns, chunks: &[&[u8]]) -> Vec<u8> {
        let mut masker = Masker::default();
        let mut out = Vec::new();
        for chunk in chunks {
            masker.push(chunk, patterns, &mut out);
            let held = masker.held.as_slice();
            assert!(
                held.is_empty()
                    || patterns
                        .values
                        .iter()
                        .any(|v| v.len() > held.len() && v.starts_with(held)),
                "held back {held:?}, which begins no value"
            );
        }
        out.extend(masker.finish(patterns));
        out
    }

    fn mask_str(values: &[&str], chunks: &[&str]) -> String {
        let chunks: Vec<&[u8]> = chunks.iter().map(|c| c.as_bytes()).collect();
        String::from_utf8(mask_chunks(&patterns(values), &chunks)).unwrap()
    }

    #[test]
    fn values_become_stars_and_the_rest_is_unchanged() {
        assert_eq!(
            mask_str(&["hunter2"], &["password=hunter2\nok\n"]),
            "password=****\nok\n"
        );
        assert_eq!(
            mask_str(&["abc", "xyz"], &["abcxyz abc-"]),
            "******** ****-"
        );
        assert_eq!(mask_str(&[], &["nothing to mask"]), "nothing to mask");
    }

    #[test]
    fn a_value_split_across_reads_is_masked() {
        assert_eq!(mask_str(&["abcdef"], &["x abc", "def y\n"]), "x **** y\n");
        assert_eq!(
            mask_str(&["abcdef"], &["a", "b", "c", "d", "e", "f"]),
            "****"
        );
    }

    #[test]
    fn the_longest_value_wins_and_a_shorter_one_still_matches_at_the_end() {
        assert_eq!(mask_str(&["abc", "abcdef"], &["abcdef"]), "****");
        assert_eq!(mask_str(&["abc", "abcdef"], &["abcd"]), "****d");
        assert_eq!(mask_str(&["abc", "abcdef"], &["abcd", "x"]), "****dx");
    }

    #[test]
    fn a_line_is_not_held_back() {
        let patterns = patterns(&["secret"]);
        let mut masker = Masker::default();
        let mut push = |chunk: &[u8]| {
            let mut out = Vec::new();
            masker.push(chunk, &patterns, &mut out);
            out
        };
        assert_eq!(push(b"a line\n"), b"a line\n");
        // Only the tail that may begin a value waits.
        assert_eq!(push(b"see sec"), b"see ");
        assert_eq!(push(b"ond\n"), b"second\n");
        assert_eq!(push(b"the sec"), b"the ");
        assert_eq!(masker.finish(&patterns), b"sec");
    }

    #[test]
    fn short_values_are_not_masked_and_whitespace_is_trimmed() {
        assert_eq!(mask_str(&["", "1", "on"], &["1 on\n"]), "1 on\n");
        assert_eq!(mask_str(&[" a "], &["a a a"]), "a a a");
        assert_eq!(
            mask_str(&["token\n"], &["[token] [token\n]"]),
            "[****] [****]"
        );
    }

    #[test]
    fn a_replaced_value_stays_masked_for_one_generation() {
        let mask = OutputMask::default();
        let masked = |text: &str| {
            let patterns = mask.patterns.borrow().clone();
            String::from_utf8(mask_chunks(&patterns, &[text.as_bytes()])).unwrap()
        };
        mask.update([("A", &b"first"[..]), ("B", b"other")]);
        assert_eq!(masked("first other"), "**** ****");
        mask.update([("A", &b"second"[..])]);
        assert_eq!(masked("first second other"), "**** **** ****");
        // The same value again changes nothing.
        mask.update([("A", &b"second"[..]), ("B", b"other")]);
        assert_eq!(masked("first second"), "**** ****");
        mask.update([("A", &b"third"[..])]);
        assert_eq!(masked("first second third"), "first **** ****");
    }

    /// Values over a small alphabet, so that they overlap, share prefixes and hide in noise.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(proptest::sample::select(b"ab\n ".to_vec()), 0..7)
    }

    proptest! {
        #[test]
        fn any_chunking_masks_like_the_whole_stream(
            values in proptest::collection::vec(value(), 0..4),
            stream in proptest::collection::vec(proptest::sample::select(b"ab\n x".to_vec()), 0..60),
            cuts in proptest::collection::vec(0usize..60, 0..8),
        ) {
            let patterns = Patterns::new(values.iter().map(Vec::as_slice));
            let whole = mask_chunks(&patterns, &[&stream]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                chunks.push(&stream[from..cut]);
                from = cut;
            }
            prop_assert_eq!(&mask_chunks(&patterns, &chunks), &whole);
            for value in &patterns.values {
                prop_assert!(
                    !whole.windows(value.len()).any(|w| w == value.as_slice()),
                    "{:?} survives in {:?}", value, whole
                );
            }
        }
    }
}
