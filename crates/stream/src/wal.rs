//! The write-ahead log of a Direct PUT source: a 200 answer means the records are on disk.
//!
//! Records are appended to segment files `<first sequence>.wal` in the log's folder and synced
//! (`fdatasync`) before their request is answered. The source's writer appends the requests
//! that arrived during the previous sync with one write and one sync (group commit), so the
//! cost of a sync is paid once per group, not once per request. Each record gets the next
//! sequence number; numbers are never reused, also across restarts: the newest segment's name
//! keeps the position when every record has left the log.
//!
//! The sink reads the records back from the log ([`Reader`]), from the oldest one not yet
//! acknowledged, so records answered 200 wait on disk, not in memory, while the sink is behind,
//! and a restart delivers the same records with the same sequence numbers and arrival times:
//! the firehose sink's record of objects in flight then recognises the objects already
//! published and rebuilds the others under the same keys, as it does for JetStream. Records
//! leave the log once the sink acknowledges them, which it does only after the objects holding
//! them are published: a segment is deleted when all its records are acknowledged.
//!
//! A frame is `length: u32 | crc32: u32 | sequence: u64 | arrival (µs since 1970): i64 | data`,
//! little-endian, the checksum covering everything after it. A frame cut short or failing its
//! checksum at the end of the newest segment was being written when the process died and was
//! never answered 200: it is cut off at start-up.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use pipectl_engine::{Error, Result};

use crate::record::Record;

/// Bytes of a frame before its data.
pub const HEADER_BYTES: usize = 24;

/// Segment files end in this.
const SEGMENT_EXT: &str = "wal";

/// Bytes read from a segment at a time when it is scanned at start-up.
const SCAN_BYTES: usize = 1024 * 1024;

/// One segment file as readers and acknowledgements see it: only synced bytes count.
struct Segment {
    /// The sequence number it was named after; its records have this one or higher.
    first: u64,
    path: PathBuf,
    /// The last sequence number it holds (its first minus one while it holds none).
    last: u64,
    /// Bytes synced to it.
    bytes: u64,
    /// Written to the end: the writer has moved on to a newer segment.
    closed: bool,
}

/// The segment being appended to. Locked for the whole of a write and its sync, so readers
/// and acknowledgements, which need only the [`Segment`] list, do not wait for the disk.
struct Writer {
    file: File,
    path: PathBuf,
    bytes: u64,
    /// The next sequence number to give.
    next: u64,
    /// A failed write could not be undone: the log takes no more records.
    broken: bool,
}

/// One source's write-ahead log.
pub struct Wal {
    dir: PathBuf,
    /// A segment is closed and a new one started once it holds this many bytes.
    segment_bytes: u64,
    /// Locked before `segments` when both are needed.
    writer: Mutex<Writer>,
    /// Every segment, oldest first; the newest is the writer's.
    segments: Mutex<VecDeque<Segment>>,
    /// Bytes in segment files: records not yet acknowledged, and acknowledged ones sharing a
    /// segment with them.
    held: AtomicU64,
    /// Every record up to this sequence number is acknowledged.
    released: AtomicU64,
}

impl Wal {
    /// Opens the log in `dir` (creating it), cutting off a frame left half-written by a crash,
    /// and deletes the segments whose records are all acknowledged. `acked` is the highest
    /// sequence number the sink's record says is published and acknowledged, `reserved` the
    /// highest it names at all: numbering continues after both, so a log deleted by hand never
    /// makes object names repeat. Segments hold about `segment_bytes`.
    pub fn open(dir: &Path, acked: u64, reserved: u64, segment_bytes: u64) -> Result<Wal> {
        let context = |what: &str| format!("write-ahead log {}: {what}", dir.display());
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::external(context("cannot create the folder"), e))?;
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        let entries =
            std::fs::read_dir(dir).map_err(|e| Error::external(context("cannot list it"), e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::external(context("cannot list it"), e))?
                .path();
            let first = path
                .extension()
                .filter(|e| *e == SEGMENT_EXT)
                .and(path.file_stem())
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(first) = first {
                found.push((first, path));
            }
        }
        found.sort();
        // Every segment but the newest was closed after a sync of its last write, so it is
        // complete and ends just before the next one begins.
        let mut segments = VecDeque::new();
        let newest = found.pop();
        let next_firsts: Vec<u64> = found
            .iter()
            .skip(1)
            .map(|(f, _)| *f)
            .chain(newest.as_ref().map(|(f, _)| *f))
            .collect();
        for ((first, path), next_first) in found.into_iter().zip(next_firsts) {
            segments.push_back(Segment {
                first,
                bytes: file_len(&path)?,
                path,
                last: next_first.saturating_sub(1),
                closed: true,
            });
        }
        let newest = match newest {
            Some((first, path)) => {
                let (last, valid) = scan(&path, first)?;
                let bytes = file_len(&path)?;
                if valid < bytes {
                    tracing::warn!(
                        log = %path.display(),
                        "cutting off {} bytes a stopped process was writing (never answered)",
                        bytes - valid
                    );
                    truncate(&path, valid)?;
                }
                Segment {
                    first,
                    path,
                    last,
                    bytes: valid,
                    closed: false,
                }
            }
            None => {
                let first = acked.max(reserved) + 1;
                Segment {
                    first,
                    path: segment_path(dir, first),
                    last: first - 1,
                    bytes: 0,
                    closed: false,
                }
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&newest.path)
            .map_err(|e| Error::external(context("cannot open its newest segment"), e))?;
        sync_dir(dir)?;
        let writer = Writer {
            file,
            path: newest.path.clone(),
            bytes: newest.bytes,
            next: newest.last.max(acked).max(reserved) + 1,
            broken: false,
        };
        // Records before the oldest one kept were all acknowledged (only acknowledged segments
        // are deleted), even if the sink's record lags behind.
        let oldest = segments.front().map_or(newest.first, |s| s.first);
        let released = acked.max(oldest.saturating_sub(1));
        segments.push_back(newest);
        let held = segments.iter().map(|s| s.bytes).sum();
        let wal = Wal {
            dir: dir.to_owned(),
            segment_bytes: segment_bytes.max(1),
            writer: Mutex::new(writer),
            segments: Mutex::new(segments),
            held: AtomicU64::new(held),
            released: AtomicU64::new(released),
        };
        wal.release(released)?;
        Ok(wal)
    }

    /// The log's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes the log holds on disk.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Every record up to this sequence number is acknowledged.
    pub fn released(&self) -> u64 {
        self.released.load(Ordering::Relaxed)
    }

    /// Whether a failed write could not be undone: the log takes no more records.
    pub fn broken(&self) -> bool {
        self.writer().map_or(true, |w| w.broken)
    }

    /// A reader of every record not yet acknowledged, then of those appended later.
    pub fn reader(&self) -> Reader {
        Reader {
            after: self.released(),
            current: None,
            last_first: 0,
        }
    }

    /// Appends the records of several requests (each with its arrival time) in one write and
    /// one sync, numbering them consecutively in order; returns the first sequence number.
    /// On failure nothing of it stays in the log.
    pub fn append(&self, groups: &[(&[Bytes], DateTime<Utc>)]) -> Result<u64> {
        let mut writer = self.writer()?;
        if writer.broken {
            return Err(Error::internal(format!(
                "the write-ahead log {} failed earlier and takes no more records",
                self.dir.display()
            )));
        }
        let first = writer.next;
        let size: usize = groups
            .iter()
            .flat_map(|(records, _)| records.iter())
            .map(|r| HEADER_BYTES + r.len())
            .sum();
        let mut buf = Vec::with_capacity(size);
        let mut seq = first;
        for (records, arrival) in groups {
            for data in *records {
                encode(&mut buf, seq, *arrival, data)?;
                seq += 1;
            }
        }
        let written = writer
            .file
            .write_all(&buf)
            .and_then(|()| writer.file.sync_data());
        if let Err(e) = written {
            // Undo the partial write so no record of a failed request is ever delivered.
            let before = writer.bytes;
            if writer.file.set_len(before).is_err() {
                writer.broken = true;
            }
            return Err(Error::external(
                format!("cannot write the write-ahead log {}", writer.path.display()),
                e,
            ));
        }
        writer.bytes += buf.len() as u64;
        writer.next = seq;
        {
            let mut segments = self.segments()?;
            if let Some(active) = segments.back_mut() {
                active.bytes = writer.bytes;
                active.last = seq - 1;
            }
        }
        self.held.fetch_add(buf.len() as u64, Ordering::Relaxed);
        if writer.bytes >= self.segment_bytes {
            self.roll(&mut writer)?;
        }
        Ok(first)
    }

    /// Every record up to `through` is published and acknowledged: deletes the segments that
    /// hold nothing else.
    pub fn release(&self, through: u64) -> Result<()> {
        self.released.fetch_max(through, Ordering::Relaxed);
        let active_done = |segments: &VecDeque<Segment>| {
            segments
                .back()
                .is_some_and(|s| s.bytes > 0 && s.last <= through)
        };
        // The active segment holds only acknowledged records: an empty one takes its place
        // (its name keeps the numbering) so that it can go.
        let roll = active_done(&*self.segments()?);
        if roll {
            let mut writer = self.writer()?;
            // Checked again under the writer's lock: an append may have come in between.
            let still = active_done(&*self.segments()?);
            if still {
                self.roll(&mut writer)?;
            }
        }
        let mut segments = self.segments()?;
        while segments
            .front()
            .is_some_and(|s| s.closed && s.last <= through)
        {
            if let Some(s) = segments.pop_front() {
                remove(&s.path)?;
                self.held.fetch_sub(s.bytes, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Closes the active segment and starts the next one, named by the next sequence number.
    fn roll(&self, writer: &mut Writer) -> Result<()> {
        let path = segment_path(&self.dir, writer.next);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::external(format!("cannot create {}", path.display()), e))?;
        // The new segment's name is what keeps the position once the old one is deleted.
        sync_dir(&self.dir)?;
        let mut segments = self.segments()?;
        if let Some(active) = segments.back_mut() {
            active.closed = true;
        }
        segments.push_back(Segment {
            first: writer.next,
            path: path.clone(),
            last: writer.next - 1,
            bytes: 0,
            closed: false,
        });
        writer.file = file;
        writer.path = path;
        writer.bytes = 0;
        Ok(())
    }

    fn writer(&self) -> Result<MutexGuard<'_, Writer>> {
        self.writer
            .lock()
            .map_err(|_| Error::internal("write-ahead log lock poisoned"))
    }

    fn segments(&self) -> Result<MutexGuard<'_, VecDeque<Segment>>> {
        self.segments
            .lock()
            .map_err(|_| Error::internal("write-ahead log lock poisoned"))
    }
}

/// Reads a log's records in sequence order: first those a stopped process left unacknowledged,
/// then each one as soon as it is synced. Memory stays bounded however much the log holds: a
/// batch is at most about `max_bytes`.
pub struct Reader {
    /// Records up to this sequence number are delivered (or were acknowledged): skipped.
    after: u64,
    current: Option<Current>,
    /// The first sequence number of the last segment opened (0 before the first).
    last_first: u64,
}

/// The segment a [`Reader`] is in.
struct Current {
    first: u64,
    path: PathBuf,
    file: File,
    /// Bytes of it read.
    offset: u64,
}

impl Reader {
    /// The next records synced to the log, up to about `max_bytes` of them (one record bigger
    /// than that comes alone); empty when the reader has caught up with the writer.
    pub fn next_batch(&mut self, wal: &Wal, max_bytes: usize) -> Result<Vec<Record>> {
        loop {
            let Some(current) = &mut self.current else {
                let next = wal
                    .segments()?
                    .iter()
                    .find(|s| s.first > self.last_first)
                    .map(|s| (s.first, s.path.clone()));
                let Some((first, path)) = next else {
                    return Ok(Vec::new());
                };
                self.last_first = first;
                match File::open(&path) {
                    Ok(file) => {
                        self.current = Some(Current {
                            first,
                            path,
                            file,
                            offset: 0,
                        });
                    }
                    // Acknowledged and deleted since the list was read: nothing to deliver.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Error::external(
                            format!("cannot read {}", path.display()),
                            e,
                        ));
                    }
                }
                continue;
            };
            // A segment no longer listed was deleted: all its records were acknowledged.
            let (end, closed) = wal
                .segments()?
                .iter()
                .find(|s| s.first == current.first)
                .map_or((0, true), |s| (s.bytes, s.closed));
            if current.offset >= end {
                if closed {
                    self.current = None;
                    continue;
                }
                return Ok(Vec::new());
            }
            let damaged = |what: String| {
                Error::user(format!(
                    "the write-ahead log segment {} is damaged ({what}); move it away to go on without its records",
                    current.path.display()
                ))
            };
            let frames = read_frames(&current.file, current.offset, end, max_bytes)
                .map_err(|e| damaged(e.to_string()))?;
            if let Some(problem) = frames.damaged {
                return Err(damaged(problem.to_owned()));
            }
            if frames.consumed == 0 {
                return Err(damaged("a frame runs past the synced end".to_owned()));
            }
            current.offset += frames.consumed as u64;
            let after = self.after;
            let fresh: Vec<Record> = frames
                .records
                .into_iter()
                .filter(|r| r.seq > after)
                .collect();
            if let Some(last) = fresh.last() {
                self.after = last.seq;
                return Ok(fresh);
            }
        }
    }
}

/// Complete frames read from one segment.
struct Frames {
    records: Vec<Record>,
    /// Bytes of the complete, valid frames.
    consumed: usize,
    /// Why the frame after them is invalid (not merely cut short).
    damaged: Option<&'static str>,
}

/// Reads the frames in `offset..end` of a segment, about `max_bytes` of them: a first frame
/// bigger than that is read whole. Frames share one buffer (no copy per record).
fn read_frames(file: &File, offset: u64, end: u64, max_bytes: usize) -> std::io::Result<Frames> {
    let available = end - offset;
    let mut want = available.min(max_bytes.max(HEADER_BYTES) as u64) as usize;
    let mut chunk = read_at(file, offset, want)?;
    if chunk.len() >= HEADER_BYTES {
        let total = HEADER_BYTES + frame_len(&chunk) as usize;
        if total > want && total as u64 <= available {
            want = total;
            chunk = read_at(file, offset, want)?;
        }
    }
    Ok(parse(Bytes::from(chunk)))
}

fn read_at(mut file: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn frame_len(header: &[u8]) -> u32 {
    u32::from_le_bytes([header[0], header[1], header[2], header[3]])
}

/// Splits a buffer into its complete frames, stopping at the first damaged one.
fn parse(chunk: Bytes) -> Frames {
    let mut records = Vec::new();
    let mut pos = 0;
    let word = |at: usize| -> [u8; 8] {
        let mut w = [0u8; 8];
        w.copy_from_slice(&chunk[at..at + 8]);
        w
    };
    let damaged = loop {
        if pos + HEADER_BYTES > chunk.len() {
            break None;
        }
        let len = frame_len(&chunk[pos..]) as usize;
        let total = HEADER_BYTES + len;
        if pos + total > chunk.len() {
            break None;
        }
        let crc = u32::from_le_bytes([
            chunk[pos + 4],
            chunk[pos + 5],
            chunk[pos + 6],
            chunk[pos + 7],
        ]);
        if crc32fast::hash(&chunk[pos + 8..pos + total]) != crc {
            break Some("a frame fails its checksum");
        }
        let seq = u64::from_le_bytes(word(pos + 8));
        let Some(arrival) = DateTime::from_timestamp_micros(i64::from_le_bytes(word(pos + 16)))
        else {
            break Some("a frame's arrival time is out of range");
        };
        records.push(Record {
            seq,
            arrival,
            data: chunk.slice(pos + HEADER_BYTES..pos + total),
        });
        pos += total;
    };
    Frames {
        records,
        consumed: pos,
        damaged,
    }
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.{SEGMENT_EXT}"))
}

fn encode(buf: &mut Vec<u8>, seq: u64, arrival: DateTime<Utc>, data: &[u8]) -> Result<()> {
    let len = u32::try_from(data.len())
        .map_err(|_| Error::user("a record of 4 GiB or more cannot be logged"))?;
    let start = buf.len();
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&arrival.timestamp_micros().to_le_bytes());
    buf.extend_from_slice(data);
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Reads the newest segment at start-up: its last complete frame's sequence number (its first
/// minus one if it holds none) and the length of its valid part.
fn scan(path: &Path, first: u64) -> Result<(u64, u64)> {
    let read_error = |e| Error::external(format!("cannot read {}", path.display()), e);
    let file = File::open(path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len();
    let mut last = first.saturating_sub(1);
    let mut valid = 0u64;
    while valid < len {
        let frames = read_frames(&file, valid, len, SCAN_BYTES).map_err(read_error)?;
        if let Some(r) = frames.records.last() {
            last = r.seq;
        }
        valid += frames.consumed as u64;
        if frames.consumed == 0 || frames.damaged.is_some() {
            break;
        }
    }
    Ok((last, valid))
}

fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| Error::external(format!("cannot read {}", path.display()), e))
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len).and_then(|()| f.sync_all()))
        .map_err(|e| {
            Error::external(
                format!("cannot cut off the torn end of {}", path.display()),
                e,
            )
        })
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::external(
            format!("cannot delete {}", path.display()),
            e,
        )),
    }
}

/// Makes a created file's name durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::external(format!("cannot sync the folder {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(micros: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(micros).unwrap()
    }

    fn records(texts: &[&str]) -> Vec<Bytes> {
        texts
            .iter()
            .map(|t| Bytes::copy_from_slice(t.as_bytes()))
            .collect()
    }

    /// Everything the reader delivers now, in batches of about `max_bytes`.
    fn read_all(wal: &Wal, reader: &mut Reader, max_bytes: usize) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        loop {
            let batch = reader.next_batch(wal, max_bytes).unwrap();
            if batch.is_empty() {
                return out;
            }
            out.extend(
                batch
                    .into_iter()
                    .map(|r| (r.seq, String::from_utf8(r.data.to_vec()).unwrap())),
            );
        }
    }

    fn segments(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn records_come_back_after_a_reopen_with_their_sequence_and_arrival() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 0, 0, 1 << 20).unwrap();
        let a = records(&["a1", "a2"]);
        let b = records(&["b1"]);
        assert_eq!(wal.append(&[(&a, at(1_000)), (&b, at(2_000))]).unwrap(), 1);
        assert_eq!(wal.append(&[(&records(&["c1"]), at(3_000))]).unwrap(), 4);
        drop(wal);

        let wal = Wal::open(dir.path(), 0, 0, 1 << 20).unwrap();
        let mut reader = wal.reader();
        let mut seen = Vec::new();
        loop {
            let batch = reader.next_batch(&wal, 1 << 20).unwrap();
            if batch.is_empty() {
                break;
            }
            seen.extend(batch);
        }
        let got: Vec<(u64, i64, &[u8])> = seen
            .iter()
            .map(|r| (r.seq, r.arrival.timestamp_micros(), &r.data[..]))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1_000, &b"a1"[..]),
                (2, 1_000, b"a2"),
                (3, 2_000, b"b1"),
                (4, 3_000, b"c1")
            ]
        );
        // New records continue the numbering, and the reader gets them once synced.
        assert_eq!(wal.append(&[(&records(&["d"]), at(4_000))]).unwrap(), 5);
        assert_eq!(
            read_all(&wal, &mut reader, 1 << 20),
            vec![(5, "d".to_owned())]
        );
    }

    #[test]
    fn the_reader_follows_the_writer_across_segments_in_small_batches() {
        let dir = tempfile::tempdir().unwrap();
        // Segments of about 100 bytes: a new one every 2 or 3 appends.
        let wal = Wal::open(dir.path(), 0, 0, 100).unwrap();
        let mut reader = wal.reader();
        let mut seen = Vec::new();
        for n in 0..20 {
            wal.append(&[(&records(&[&format!("record {n:02}")]), at(n))])
                .unwrap();
            if n % 3 == 0 {
                // Batches of one frame (the bound is smaller than a frame).
                seen.extend(read_all(&wal, &mut reader, 1));
            }
        }
        seen.extend(read_all(&wal, &mut reader, 1 << 20));
        let expected: Vec<(u64, String)> =
            (0..20).map(|n| (n + 1, format!("record {n:02}"))).collect();
        assert_eq!(seen, expected);
        assert!(segments(dir.path()).len() > 5, "{:?}", segments(dir.path()));
    }

    #[test]
    fn released_segments_are_deleted_and_numbering_survives_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        // Tiny segments: every append closes one.
        let wal = Wal::open(dir.path(), 0, 0, 1).unwrap();
        for n in 0..5 {
            wal.append(&[(&records(&[&format!("r{n}")]), at(0))])
                .unwrap();
        }
        assert_eq!(segments(dir.path()).len(), 6, "{:?}", segments(dir.path()));
        wal.release(3).unwrap();
        assert_eq!(
            segments(dir.path()),
            vec![
                "00000000000000000004.wal",
                "00000000000000000005.wal",
                "00000000000000000006.wal"
            ]
        );
        wal.release(5).unwrap();
        assert_eq!(segments(dir.path()), vec!["00000000000000000006.wal"]);
        assert_eq!(wal.held(), 0);
        drop(wal);
        // Nothing left to deliver, and the next record is number 6, not 1 again.
        let wal = Wal::open(dir.path(), 0, 0, 1).unwrap();
        assert_eq!(wal.released(), 5);
        assert!(read_all(&wal, &mut wal.reader(), 1 << 20).is_empty());
        assert_eq!(wal.append(&[(&records(&["x"]), at(0))]).unwrap(), 6);
    }

    #[test]
    fn an_active_segment_fully_acknowledged_is_replaced_by_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 0, 0, 1 << 20).unwrap();
        wal.append(&[(&records(&["a", "b", "c"]), at(0))]).unwrap();
        wal.release(2).unwrap();
        assert!(wal.held() > 0, "record 3 is not acknowledged yet");
        wal.release(3).unwrap();
        assert_eq!(wal.held(), 0);
        assert_eq!(segments(dir.path()), vec!["00000000000000000004.wal"]);
    }

    #[test]
    fn segments_acknowledged_before_a_restart_are_deleted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 0, 0, 1).unwrap();
        for n in 0..3 {
            wal.append(&[(&records(&[&format!("r{n}")]), at(0))])
                .unwrap();
        }
        drop(wal);
        // The sink acknowledged 1 and 2 but the process died before the log heard of it.
        let wal = Wal::open(dir.path(), 2, 2, 1).unwrap();
        assert_eq!(
            segments(dir.path()),
            vec!["00000000000000000003.wal", "00000000000000000004.wal"]
        );
        assert_eq!(
            read_all(&wal, &mut wal.reader(), 1 << 20),
            vec![(3, "r2".to_owned())]
        );
    }

    #[test]
    fn acknowledged_records_and_a_torn_tail_are_not_delivered_again() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 0, 0, 1 << 20).unwrap();
        wal.append(&[(&records(&["one", "two", "three"]), at(0))])
            .unwrap();
        drop(wal);
        // A crash in the middle of the next write: half a frame at the end.
        let mut torn = Vec::new();
        encode(&mut torn, 4, at(0), b"four").unwrap();
        let path = dir.path().join("00000000000000000001.wal");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&torn[..torn.len() - 2]).unwrap();
        drop(f);
        // The sink's record says 1 is published and acknowledged.
        let wal = Wal::open(dir.path(), 1, 1, 1 << 20).unwrap();
        let mut reader = wal.reader();
        assert_eq!(
            read_all(&wal, &mut reader, 1 << 20),
            vec![(2, "two".to_owned()), (3, "three".to_owned())]
        );
        assert_eq!(wal.append(&[(&records(&["4"]), at(0))]).unwrap(), 4);
        assert_eq!(
            read_all(&wal, &mut reader, 1 << 20),
            vec![(4, "4".to_owned())]
        );
    }

    #[test]
    fn numbering_continues_after_what_the_sinks_record_names_when_the_log_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 10, 25, 1 << 20).unwrap();
        assert_eq!(wal.append(&[(&records(&["x"]), at(0))]).unwrap(), 26);
    }

    #[test]
    fn a_damaged_closed_segment_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 0, 0, 1).unwrap();
        wal.append(&[(&records(&["aaaa"]), at(0))]).unwrap();
        wal.append(&[(&records(&["bbbb"]), at(0))]).unwrap();
        drop(wal);
        let first = dir.path().join("00000000000000000001.wal");
        let mut bytes = std::fs::read(&first).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();
        let wal = Wal::open(dir.path(), 0, 0, 1).unwrap();
        let err = wal
            .reader()
            .next_batch(&wal, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("00000000000000000001.wal") && err.contains("checksum"),
            "{err}"
        );
    }
}
