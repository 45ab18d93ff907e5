//! Recycled frame buffers for the origins that make their own bytes ([`SyntheticOrigin`],
//! [`DirOrigin`]).
//!
//! A frame handed to the listener lives until the socket has taken it (and, under a
//! [`CoalescingFiller`], until the fill ends). Allocating a fresh buffer for every frame costs
//! more than the bytes: large allocations come from memory the allocator gave back to the
//! system, so every 4 KiB page of every frame faults and is cleared again (a quarter of the
//! HTTP/1.1 listener's samples), and a zeroed buffer writes every byte twice. A [`FramePool`]
//! keeps the buffers of dropped frames: a [`Bytes`] made by [`FramePool::frame`] owns its buffer
//! and returns it to the pool when its last clone is dropped, and the next frame is written over
//! the old bytes (no zeroing: the buffer is initialised since its first use).
//!
//! [`SyntheticOrigin`]: crate::SyntheticOrigin
//! [`DirOrigin`]: crate::DirOrigin
//! [`CoalescingFiller`]: crate::CoalescingFiller

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Buffers of one size, recycled as their frames are dropped. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct FramePool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Size of every pooled buffer, bytes.
    buffer_bytes: usize,
    /// Most idle buffers kept; buffers returned beyond it are freed.
    max_idle: usize,
    idle: Mutex<Vec<Vec<u8>>>,
}

impl FramePool {
    /// A pool of `buffer_bytes` buffers that keeps at most `max_idle` of them while no frame
    /// uses them (so at most `buffer_bytes * max_idle` bytes idle).
    pub fn new(buffer_bytes: usize, max_idle: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                buffer_bytes,
                max_idle,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Size of the pooled buffers, bytes.
    pub fn buffer_bytes(&self) -> usize {
        self.shared.buffer_bytes
    }

    /// Most buffers kept idle.
    pub fn max_idle(&self) -> usize {
        self.shared.max_idle
    }

    /// Buffers idle in the pool now.
    pub fn idle(&self) -> usize {
        self.shared.lock().len()
    }

    /// A frame of `len` bytes written by `write`, which is given exactly `len` bytes to
    /// overwrite (their content before the call is unspecified: zeroes or an older frame).
    ///
    /// Frames up to [`buffer_bytes`](Self::buffer_bytes) use a pooled buffer, which goes back
    /// to the pool when the returned `Bytes` and all its clones and slices are dropped; larger
    /// ones get a buffer of their own. An error from `write` is returned and the buffer goes
    /// straight back.
    pub fn frame<E>(
        &self,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Bytes, E> {
        if len > self.shared.buffer_bytes {
            let mut buf = vec![0u8; len];
            write(&mut buf)?;
            return Ok(Bytes::from(buf));
        }
        let buf = self.shared.lock().pop();
        let mut frame = PooledFrame {
            buf: buf.unwrap_or_else(|| vec![0u8; self.shared.buffer_bytes]),
            len,
            home: Arc::clone(&self.shared),
        };
        write(&mut frame.buf[..len])?;
        Ok(Bytes::from_owner(frame))
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // The list is only pushed to and popped from: a panic elsewhere cannot leave it torn.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The owner behind a pooled frame's [`Bytes`]: its first `len` bytes are the frame.
struct PooledFrame {
    buf: Vec<u8>,
    len: usize,
    home: Arc<Shared>,
}

impl AsRef<[u8]> for PooledFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledFrame {
    fn drop(&mut self) {
        let mut idle = self.home.lock();
        if idle.len() < self.home.max_idle {
            idle.push(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(fill: u8) -> impl FnOnce(&mut [u8]) -> Result<(), ()> {
        move |b| {
            b.fill(fill);
            Ok(())
        }
    }

    #[test]
    fn a_dropped_frame_returns_its_buffer_and_the_next_frame_reuses_it() {
        let pool = FramePool::new(16, 4);
        let a = pool.frame(10, ok(1)).unwrap();
        assert_eq!(&a[..], &[1; 10]);
        assert_eq!(pool.idle(), 0);
        let address = a.as_ptr();
        drop(a);
        assert_eq!(pool.idle(), 1);
        let b = pool.frame(16, ok(2)).unwrap();
        assert_eq!(b.as_ptr(), address, "the same buffer, written over");
        assert_eq!(&b[..], &[2; 16]);
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn clones_and_slices_keep_the_buffer_until_the_last_is_dropped() {
        let pool = FramePool::new(8, 4);
        let frame = pool.frame(8, ok(3)).unwrap();
        let slice = frame.slice(2..5);
        let clone = frame.clone();
        drop(frame);
        drop(clone);
        assert_eq!(pool.idle(), 0);
        assert_eq!(&slice[..], &[3; 3]);
        drop(slice);
        assert_eq!(pool.idle(), 1);
    }

    #[test]
    fn at_most_max_idle_buffers_are_kept() {
        let pool = FramePool::new(4, 2);
        let frames: Vec<Bytes> = (0..5).map(|i| pool.frame(4, ok(i)).unwrap()).collect();
        drop(frames);
        assert_eq!(pool.idle(), 2);
    }

    #[test]
    fn larger_frames_get_their_own_buffer_and_errors_return_the_buffer() {
        let pool = FramePool::new(4, 2);
        let big = pool.frame(9, ok(7)).unwrap();
        assert_eq!(&big[..], &[7; 9]);
        drop(big);
        assert_eq!(pool.idle(), 0, "not pooled");
        let failed = pool.frame(4, |_| Err("bad"));
        assert_eq!(failed.unwrap_err(), "bad");
        assert_eq!(pool.idle(), 1);
    }

    #[test]
    fn frames_move_between_threads() {
        let pool = FramePool::new(64, 8);
        let frame = pool.frame(64, ok(9)).unwrap();
        std::thread::spawn(move || assert_eq!(&frame[..], &[9; 64]))
            .join()
            .unwrap();
        assert_eq!(pool.idle(), 1);
    }
}
