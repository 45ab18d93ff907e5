//! Rendezvous (highest-random-weight) hashing: every replica that holds the same peer set picks
//! the same coordinator for a chunk, without talking to the others.
//!
//! # Default scoring: xxh3 (stable; changing it is a breaking change)
//!
//! All integers little-endian unless noted; `LP(s)` is `LEB128(len(s)) || s` (the unsigned
//! base-128 varint of the byte length: one byte below 128); `xxh3` is XXH3-64 with seed 0 and
//! the default secret. (Varint lengths keep realistic keys within xxh3's fast path for inputs
//! of at most 128 bytes.)
//!
//! ```text
//! key_digest  = xxh3( LP(origin_id) || LP(bucket) || LP(object_key) || LP(etag)
//!                     || LE64(chunk_size) || LE64(index) )
//! peer_digest = xxh3( ip16 || BE16(port) )        ip16: the 16-byte IPv6 form, IPv4 as ::ffff:a.b.c.d
//! score       = xxh3( LE64(peer_digest) || LE64(key_digest) )
//! ```
//!
//! The coordinator is the peer with the highest score; among equal scores the first peer in
//! snapshot order (sorted by `(ip, port)`) wins, so the result never depends on the order DNS
//! returned the records in. A snapshot precomputes `peer_digest`, so a lookup hashes the key once
//! and then costs one 16-byte xxh3 per peer, with no heap allocation.
//!
//! # Go-compatible scoring
//!
//! Bit-identical to the Go implementation, so Rust and Go replicas agree during a migration:
//!
//! ```text
//! H     = SHA-256( LP(origin_id) || LP(bucket) || LP(object_key) || LP(etag) || LE64(chunk_size) )
//! path  = origin_id "/" lowercase_hex(H) "/" decimal(index)
//! score = BE64( SHA-256( ip_text || 0x00 || [BE32(port) || 0x00 if port != 0] || path )[0..8] )
//! ```
//!
//! `ip_text` is the textual IP (IPv6 in RFC 5952 form, as Go prints it). Ties go to the earliest
//! peer in list order ([`coordinator_index`] keeps the caller's order; a snapshot's order is
//! sorted).

use alloc::string::String;
use alloc::vec::Vec;
use core::net::IpAddr;

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::chunk::ChunkKey;
use crate::peer::{Peer, canonical_ip};

/// Which scoring function ranks peers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Scoring {
    /// The fast, seed-free xxh3 scoring (default). See the module docs for the byte layout.
    #[default]
    Xxh3,
    /// Bit-identical to the Go implementation (SHA-256 per peer per lookup; about 50x slower).
    GoCompat,
}

impl Scoring {
    /// `"xxh3"` or `"go-compat"`.
    pub const fn name(self) -> &'static str {
        match self {
            Scoring::Xxh3 => "xxh3",
            Scoring::GoCompat => "go-compat",
        }
    }

    /// Parses `"xxh3"` or `"go-compat"`.
    pub fn from_name(name: &str) -> Option<Scoring> {
        match name {
            "xxh3" => Some(Scoring::Xxh3),
            "go-compat" => Some(Scoring::GoCompat),
            _ => None,
        }
    }
}

/// Longest input hashed on the stack in one shot; longer keys use the streaming hasher (same
/// result).
const STACK_KEY_BYTES: usize = 256;

/// `LEB128(n)`: the unsigned base-128 varint of `n` (at most 10 bytes) and its length.
fn leb128(mut n: u64) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let mut len = 0usize;
    for slot in out.iter_mut() {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        len += 1;
        if n == 0 {
            *slot = byte;
            break;
        }
        *slot = byte | 0x80;
    }
    (out, len)
}

/// The xxh3 key digest (see the module docs). No heap allocation.
pub fn xxh3_key_digest(key: &ChunkKey) -> u64 {
    let fields = [
        key.origin_id.as_bytes(),
        key.bucket.as_bytes(),
        key.object_key.as_bytes(),
        key.etag.as_bytes(),
    ];
    let total: usize = fields.iter().map(|f| f.len().saturating_add(10)).sum();
    if total.saturating_add(16) <= STACK_KEY_BYTES {
        stack_key_digest(&fields, key.chunk_size, key.index)
    } else {
        let mut h = Xxh3::new();
        for f in fields {
            let (len, n) = leb128(f.len() as u64);
            h.update(len.get(..n).unwrap_or(&[]));
            h.update(f);
        }
        h.update(&key.chunk_size.to_le_bytes());
        h.update(&key.index.to_le_bytes());
        h.digest()
    }
}

/// The one-shot path of [`xxh3_key_digest`]: the layout written into a stack buffer.
/// The caller checked that the fields, 10 bytes of varint each at most, and the two integers
/// fit in [`STACK_KEY_BYTES`], so no index below can be out of bounds.
#[allow(clippy::indexing_slicing)]
#[inline]
fn stack_key_digest(fields: &[&[u8]; 4], chunk_size: u64, index: u64) -> u64 {
    let mut buf = [0u8; STACK_KEY_BYTES];
    let mut at = 0usize;
    for f in fields {
        let mut n = f.len() as u64;
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                buf[at] = low;
                at += 1;
                break;
            }
            buf[at] = low | 0x80;
            at += 1;
        }
        buf[at..at + f.len()].copy_from_slice(f);
        at += f.len();
    }
    buf[at..at + 8].copy_from_slice(&chunk_size.to_le_bytes());
    buf[at + 8..at + 16].copy_from_slice(&index.to_le_bytes());
    xxh3_64(&buf[..at + 16])
}

/// The xxh3 peer digest (see the module docs). The IP is canonicalised first.
pub fn xxh3_peer_digest(ip: IpAddr, port: u16) -> u64 {
    let ip16 = match canonical_ip(ip) {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let mut buf = [0u8; 18];
    buf[..16].copy_from_slice(&ip16);
    buf[16..].copy_from_slice(&port.to_be_bytes());
    xxh3_64(&buf)
}

/// Combines a peer digest and a key digest into the xxh3 score.
#[inline]
pub fn xxh3_combine(peer_digest: u64, key_digest: u64) -> u64 {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&peer_digest.to_le_bytes());
    buf[8..].copy_from_slice(&key_digest.to_le_bytes());
    xxh3_64(&buf)
}

/// The Go design's chunk hash `H` (see the module docs).
pub fn go_hash_key(key: &ChunkKey) -> [u8; 32] {
    let mut h = Sha256::new();
    for f in [&key.origin_id, &key.bucket, &key.object_key, &key.etag] {
        h.update((f.len() as u64).to_le_bytes());
        h.update(f.as_bytes());
    }
    h.update(key.chunk_size.to_le_bytes());
    h.finalize().into()
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

#[allow(clippy::indexing_slicing)] // nibbles are < 16; chunks of 2 have indices 0 and 1
fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_LOWER[usize::from(b >> 4)];
        pair[1] = HEX_LOWER[usize::from(b & 0x0f)];
    }
    out
}

/// Decimal digits of `v` into a stack buffer; returns the buffer and the used tail offset.
#[allow(clippy::indexing_slicing)] // at most 20 digits in a u64, the buffer's size
fn decimal(mut v: u64) -> ([u8; 20], usize) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return (buf, at);
        }
    }
}

/// The Go design's on-store path `origin_id/hex(H)/index`, also the key bytes of Go-compatible
/// scoring.
pub fn go_path(key: &ChunkKey) -> String {
    let hex = hex32(&go_hash_key(key));
    let (dec, at) = decimal(key.index);
    let mut out = String::with_capacity(key.origin_id.len() + 86);
    out.push_str(&key.origin_id);
    out.push('/');
    out.extend(hex.iter().map(|&b| char::from(b)));
    out.push('/');
    out.extend(dec.get(at..).unwrap_or(&[]).iter().map(|&b| char::from(b)));
    out
}

/// Go's `Score(p Peer, key []byte)`: `ip_text` is the peer's IP as text, `key` the path bytes.
pub fn go_compat_score(ip_text: &[u8], port: u16, key: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(ip_text);
    h.update([0u8]);
    if port != 0 {
        h.update(u32::from(port).to_be_bytes());
        h.update([0u8]);
    }
    h.update(key);
    first8_be(&h.finalize().into())
}

fn first8_be(d: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// Per-peer precomputed prefix for Go-compatible scoring: `ip_text || 0x00 || [BE32(port) || 0x00]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GoPeerPrefix {
    buf: [u8; 56],
    len: u8,
}

impl GoPeerPrefix {
    #[allow(clippy::indexing_slicing)] // IP text is at most 45 bytes; 45 + 6 < 56
    pub(crate) fn new(peer: &Peer) -> GoPeerPrefix {
        struct Cursor<'a>(&'a mut [u8], usize);
        impl core::fmt::Write for Cursor<'_> {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                let end = self.1 + s.len();
                let dst = self.0.get_mut(self.1..end).ok_or(core::fmt::Error)?;
                dst.copy_from_slice(s.as_bytes());
                self.1 = end;
                Ok(())
            }
        }
        let mut buf = [0u8; 56];
        let mut cur = Cursor(&mut buf, 0);
        // The longest IP text is 45 bytes ("ffff:...:255.255.255.255"), so this cannot fail.
        let _ = core::fmt::write(&mut cur, format_args!("{}", peer.ip));
        let mut len = cur.1;
        buf[len] = 0;
        len += 1;
        if peer.port != 0 {
            buf[len..len + 4].copy_from_slice(&u32::from(peer.port).to_be_bytes());
            buf[len + 4] = 0;
            len += 5;
        }
        GoPeerPrefix {
            buf,
            len: len as u8,
        }
    }

    fn bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// A key prepared for scoring against many peers: hashed once per lookup.
#[derive(Clone, Debug)]
pub enum PreparedKey<'a> {
    /// xxh3: the key digest.
    Xxh3(u64),
    /// Go-compatible: the pieces of the path, kept on the stack.
    GoCompat {
        /// `origin_id`.
        origin_id: &'a str,
        /// `lowercase_hex(H)`.
        hex: [u8; 64],
        /// decimal index digits (`index_digits[index_at..]`).
        index_digits: [u8; 20],
        /// first used byte of `index_digits`.
        index_at: usize,
    },
}

impl<'a> PreparedKey<'a> {
    /// Hashes `key` for `scoring`. No heap allocation.
    pub fn new(key: &'a ChunkKey, scoring: Scoring) -> PreparedKey<'a> {
        match scoring {
            Scoring::Xxh3 => PreparedKey::Xxh3(xxh3_key_digest(key)),
            Scoring::GoCompat => {
                let (index_digits, index_at) = decimal(key.index);
                PreparedKey::GoCompat {
                    origin_id: &key.origin_id,
                    hex: hex32(&go_hash_key(key)),
                    index_digits,
                    index_at,
                }
            }
        }
    }

    fn go_score(&self, prefix: &[u8]) -> u64 {
        match self {
            PreparedKey::Xxh3(_) => 0,
            PreparedKey::GoCompat {
                origin_id,
                hex,
                index_digits,
                index_at,
            } => {
                let mut h = Sha256::new();
                h.update(prefix);
                h.update(origin_id.as_bytes());
                h.update(b"/");
                h.update(hex);
                h.update(b"/");
                h.update(index_digits.get(*index_at..).unwrap_or(&[]));
                first8_be(&h.finalize().into())
            }
        }
    }

    /// The score of one peer (computing its digest or prefix on the fly).
    pub fn score(&self, peer: &Peer) -> u64 {
        match self {
            PreparedKey::Xxh3(kd) => xxh3_combine(xxh3_peer_digest(peer.ip, peer.port), *kd),
            PreparedKey::GoCompat { .. } => self.go_score(GoPeerPrefix::new(peer).bytes()),
        }
    }

    /// Go-compatible score from a peer's precomputed prefix (0 for an xxh3 key).
    pub(crate) fn go_score_prefix(&self, prefix: &GoPeerPrefix) -> u64 {
        self.go_score(prefix.bytes())
    }
}

/// The score of `peer` for `key` under `scoring`.
pub fn score(peer: &Peer, key: &ChunkKey, scoring: Scoring) -> u64 {
    PreparedKey::new(key, scoring).score(peer)
}

/// Index of the coordinator of `key` among `peers` in the caller's order: highest score, ties
/// to the earliest peer (Go's semantics). `None` only for an empty slice.
pub fn coordinator_index(peers: &[Peer], key: &ChunkKey, scoring: Scoring) -> Option<usize> {
    let prepared = PreparedKey::new(key, scoring);
    let mut best: Option<(usize, u64)> = None;
    for (i, p) in peers.iter().enumerate() {
        let s = prepared.score(p);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

/// All `peers` with their scores, highest first; equal scores keep the caller's order.
pub fn ranked(peers: &[Peer], key: &ChunkKey, scoring: Scoring) -> Vec<(Peer, u64)> {
    let prepared = PreparedKey::new(key, scoring);
    let mut out: Vec<(Peer, u64)> = peers.iter().map(|p| (*p, prepared.score(p))).collect();
    out.sort_by_key(|e| core::cmp::Reverse(e.1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u64) -> ChunkKey {
        ChunkKey {
            origin_id: "azure-eastus".into(),
            bucket: "models".into(),
            object_key: "llama/weights/shard-00042.safetensors".into(),
            etag: "9b2cf535f27731c974343645a3985328".into(),
            chunk_size: 8_388_608,
            index,
        }
    }

    fn peer(ip: &str, port: u16) -> Peer {
        Peer {
            ip: ip.parse().unwrap(),
            port,
            is_self: false,
        }
    }

    #[test]
    fn stack_and_streaming_key_digests_agree() {
        let mut k = key(1);
        let short = xxh3_key_digest(&k);
        let mut h = Xxh3::new();
        for f in [&k.origin_id, &k.bucket, &k.object_key, &k.etag] {
            let (len, n) = leb128(f.len() as u64);
            h.update(&len[..n]);
            h.update(f.as_bytes());
        }
        h.update(&k.chunk_size.to_le_bytes());
        h.update(&k.index.to_le_bytes());
        assert_eq!(short, h.digest());
        k.object_key = "x".repeat(1000);
        let long = xxh3_key_digest(&k);
        let mut h = Xxh3::new();
        for f in [&k.origin_id, &k.bucket, &k.object_key, &k.etag] {
            let (len, n) = leb128(f.len() as u64);
            h.update(&len[..n]);
            h.update(f.as_bytes());
        }
        h.update(&k.chunk_size.to_le_bytes());
        h.update(&k.index.to_le_bytes());
        assert_eq!(long, h.digest());
    }

    #[test]
    fn leb128_encodes_varints() {
        let enc = |n: u64| {
            let (b, len) = leb128(n);
            b[..len].to_vec()
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(u64::MAX).len(), 10);
        assert_eq!(enc(u64::MAX)[9], 0x01);
    }

    #[test]
    fn mapped_ipv6_scores_as_ipv4() {
        let v4 = peer("10.0.0.1", 0);
        let mapped = peer("::ffff:10.0.0.1", 0);
        assert_eq!(
            score(&v4, &key(0), Scoring::Xxh3),
            score(&mapped, &key(0), Scoring::Xxh3)
        );
    }

    #[test]
    fn go_prefix_matches_direct_score() {
        for p in [
            peer("10.0.0.1", 0),
            peer("fd00:10:244::2a", 0),
            peer("127.0.0.1", 40001),
        ] {
            let path = go_path(&key(7));
            let ip = alloc::format!("{}", p.ip);
            assert_eq!(
                score(&p, &key(7), Scoring::GoCompat),
                go_compat_score(ip.as_bytes(), p.port, path.as_bytes())
            );
        }
        let longest = peer("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
        assert_eq!(GoPeerPrefix::new(&longest).len, 39 + 1 + 5);
    }

    #[test]
    fn ties_go_to_the_earliest_peer() {
        let a = peer("10.0.0.1", 0);
        let b = peer("10.0.0.2", 0);
        let peers = [a, b, a];
        let i = coordinator_index(&peers, &key(0), Scoring::GoCompat).unwrap();
        assert!(i < 2);
        assert_eq!(coordinator_index(&[], &key(0), Scoring::Xxh3), None);
        let r = ranked(&peers, &key(0), Scoring::Xxh3);
        assert!(r.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    #[test]
    fn scoring_names_round_trip() {
        for s in [Scoring::Xxh3, Scoring::GoCompat] {
            assert_eq!(Scoring::from_name(s.name()), Some(s));
        }
        assert_eq!(Scoring::from_name("sha"), None);
    }
}
