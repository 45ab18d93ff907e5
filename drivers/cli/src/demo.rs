//! `orca-cluster demo`: three replicas in one process, an embedded DNS server and a synthetic
//! origin, all on loopback. Needs nothing outside this binary and ends by itself.
//!
//! It shows the read path a cache embeds (`Cluster::read` with one `CoalescingFiller` per
//! replica, also served to the peers): each chunk read from the origin once cluster-wide, ten
//! concurrent readers of one chunk sharing one origin read, a replica killed without leaving DNS
//! (reads keep succeeding, fast), and a scale-down (only the departed replica's chunks move).
//!
//! DNS A records carry no ports, so, as in production, every replica listens on the same port;
//! the three replicas get the loopback addresses 127.0.0.1, 127.0.0.2 and 127.0.0.3 (all of
//! 127.0.0.0/8 is local on Linux).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use orca_cluster_testdns::TestDnsServer;
use orca_cluster_tokio::{
    ChunkKey, ChunkStream, Cluster, ClusterConfig, CoalescingFiller, FillListener, FillRequest,
    Filler, FillerError, ListenerHandle, ListenerSettings, Options, Peer, ReadSource,
    SyntheticOrigin,
};

use crate::args::duration;
use crate::output::mb_per_s;

/// Flags of `orca-cluster demo`.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Number of chunks in the demo object.
    #[arg(long, default_value_t = 12)]
    chunks: u64,
    /// Chunk size in MiB.
    #[arg(long, default_value_t = 8)]
    chunk_mib: u64,
    /// Membership refresh interval of the replicas.
    #[arg(long, default_value = "500ms", value_parser = duration)]
    refresh: Duration,
}

const SERVICE: &str = "orca-peers.demo.svc.cluster.local";
const REPLICAS: usize = 3;

/// A replica's read-through cache in front of the (synthetic) origin: a miss costs an origin
/// fetch (with some latency), then the chunk is served from memory. Concurrent misses of one
/// chunk are coalesced by the `CoalescingFiller` around it, not here.
#[derive(Clone, Default)]
struct CachingOrigin {
    cache: Arc<Mutex<HashMap<ChunkKey, Bytes>>>,
    origin_fetches: Arc<AtomicU64>,
}

/// What an origin fetch costs in the demo.
const ORIGIN_LATENCY: Duration = Duration::from_millis(50);

impl CachingOrigin {
    fn fetches(&self) -> u64 {
        self.origin_fetches.load(Ordering::Relaxed)
    }
}

impl Filler for CachingOrigin {
    async fn fill(&self, req: FillRequest) -> Result<ChunkStream, FillerError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&req.key)
            .cloned();
        let bytes = match cached {
            Some(bytes) => bytes,
            None => {
                self.origin_fetches.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(ORIGIN_LATENCY).await;
                let bytes = Bytes::from(SyntheticOrigin::chunk_bytes(&req.key, req.object_size));
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(req.key.clone(), bytes.clone());
                bytes
            }
        };
        let frames: Vec<std::io::Result<Bytes>> = (0..bytes.len())
            .step_by(256 * 1024)
            .map(|at| Ok(bytes.slice(at..(at + 256 * 1024).min(bytes.len()))))
            .collect();
        Ok(Box::pin(futures_util::stream::iter(frames)))
    }
}

struct Replica {
    name: String,
    ip: IpAddr,
    cluster: Cluster,
    /// `None` once the replica was killed.
    listener: Mutex<Option<ListenerHandle>>,
    /// The cache, for its counters.
    origin: CachingOrigin,
    /// What the replica serves to its peers and reads with.
    filler: CoalescingFiller<CachingOrigin>,
}

/// How one replica got one chunk.
#[derive(Clone)]
enum Source {
    Local,
    Peer {
        from: usize,
        mb_s: f64,
    },
    /// Locally, because the coordinator could not serve it.
    Fallback,
}

fn name_of(replicas: &[Replica], peer: &Peer) -> String {
    replicas
        .iter()
        .find(|r| r.ip == peer.ip)
        .map(|r| r.name.clone())
        .unwrap_or_else(|| peer.to_string())
}

fn index_of(replicas: &[Replica], peer: &Peer) -> Option<usize> {
    replicas.iter().position(|r| r.ip == peer.ip)
}

async fn bind_same_port(ips: &[IpAddr]) -> Result<Vec<FillListener>, String> {
    let mut last_err = String::new();
    for _ in 0..20 {
        let first = FillListener::bind(SocketAddr::new(ips[0], 0))
            .await
            .map_err(|e| format!("bind {}: {e}", ips[0]))?;
        let port = first.local_addr().port();
        let mut all = vec![first];
        for ip in &ips[1..] {
            match FillListener::bind(SocketAddr::new(*ip, port)).await {
                Ok(l) => all.push(l),
                Err(e) => {
                    last_err = format!("bind {ip}:{port}: {e}");
                    break;
                }
            }
        }
        if all.len() == ips.len() {
            return Ok(all);
        }
    }
    Err(last_err)
}

/// Reads every chunk of the object through replica `r`; returns how each chunk was obtained.
async fn read_object(
    replicas: Arc<Vec<Replica>>,
    r: usize,
    key_of: Arc<dyn Fn(u64) -> ChunkKey + Send + Sync>,
    indices: Vec<u64>,
    object_size: u64,
    progress: Arc<Progress>,
) -> Result<Vec<(u64, Source)>, String> {
    let me = &replicas[r];
    let mut out = Vec::new();
    for i in indices {
        let key = key_of(i);
        let started = Instant::now();
        let read = me
            .cluster
            .read(&key, object_size, &me.filler)
            .await
            .map_err(|e| format!("{} chunk {i}: {e}", me.name))?;
        let source = match read.source() {
            ReadSource::Local => Source::Local,
            ReadSource::Coordinator(c) => Source::Peer {
                from: index_of(&replicas, c).unwrap_or(usize::MAX),
                mb_s: 0.0,
            },
            ReadSource::Fallback { .. } => Source::Fallback,
        };
        let data = read
            .collect_bytes()
            .await
            .map_err(|e| format!("{} chunk {i}: {e}", me.name))?;
        let source = match source {
            Source::Peer { from, .. } => Source::Peer {
                from,
                mb_s: mb_per_s(data.len() as u64, started.elapsed()),
            },
            other => other,
        };
        let got = (data.len() as u64, source, data);
        if got.2 != SyntheticOrigin::chunk_bytes(&key, object_size) {
            return Err(format!(
                "{} chunk {i}: bytes differ from the origin",
                me.name
            ));
        }
        progress.done(r, got.0);
        out.push((i, got.1));
    }
    Ok(out)
}

/// Progress shown while replicas read: one line, rewritten in place on a terminal.
struct Progress {
    /// One counter per replica taking part.
    done: Vec<AtomicU64>,
    total: u64,
    bytes: AtomicU64,
    tty: bool,
    started: Instant,
}

impl Progress {
    fn done(&self, replica: usize, bytes: u64) {
        let n = self.done[replica].fetch_add(1, Ordering::Relaxed) + 1;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let counts: Vec<String> = self
            .done
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "replica-{} {}/{}",
                    i + 1,
                    c.load(Ordering::Relaxed),
                    self.total
                )
            })
            .collect();
        let line = format!(
            "      progress: {}  ({:.0} MiB read)",
            counts.join(", "),
            self.bytes.load(Ordering::Relaxed) as f64 / 1048576.0
        );
        if self.tty {
            print!("\r{line}   ");
            let _ = std::io::stdout().flush();
        } else if n.is_multiple_of(4) || n == self.total {
            println!("{line} [{:.1}s]", self.started.elapsed().as_secs_f64());
        }
    }
}

/// Runs the demo.
pub(crate) async fn run(a: DemoArgs) -> Result<(), String> {
    let started = Instant::now();
    let tty = std::io::stdout().is_terminal();
    if a.chunks == 0 || a.chunk_mib == 0 {
        return Err("--chunks and --chunk-mib must be at least 1".into());
    }
    println!(
        "orca-cluster demo: {REPLICAS} replicas, an embedded DNS server and a synthetic origin, all on loopback\n"
    );

    // 1. DNS
    let ips: Vec<IpAddr> = (1..=REPLICAS as u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect();
    let dns = TestDnsServer::start().map_err(|e| format!("embedded DNS server: {e}"))?;
    dns.set_records(SERVICE, &ips);
    println!(
        "[1/7] embedded DNS server on {} answers {SERVICE} with {}",
        dns.addr(),
        ips.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // 2. Replicas
    let listeners = bind_same_port(&ips).await?;
    let port = listeners[0].local_addr().port();
    let mut replicas = Vec::new();
    for (i, (ip, listener)) in ips.iter().zip(listeners).enumerate() {
        let config = ClusterConfig {
            service: SERVICE.into(),
            membership_refresh: a.refresh,
            internal_listen: SocketAddr::new(*ip, port),
            self_pod_ip: vec![*ip],
            lookup_timeout: Duration::from_secs(1),
            ..ClusterConfig::default()
        };
        let cluster = Cluster::start(config, Options::default().with_nameserver(dns.addr()))
            .await
            .map_err(|e| format!("replica-{}: {e}", i + 1))?;
        let origin = CachingOrigin::default();
        let filler = CoalescingFiller::new(origin.clone());
        let listener = listener.serve(&cluster, filler.clone(), ListenerSettings::default());
        replicas.push(Replica {
            name: format!("replica-{}", i + 1),
            ip: *ip,
            cluster,
            listener: Mutex::new(Some(listener)),
            origin,
            filler,
        });
    }
    println!(
        "[2/7] replicas listening on port {port} (plain HTTP/1.1; production uses mutual TLS): {}",
        replicas
            .iter()
            .map(|r| format!("{} {}", r.name, r.ip))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Every replica discovered the others through DNS; wait (bounded) until all agree.
    let deadline = Instant::now() + Duration::from_secs(10);
    while replicas.iter().any(|r| r.cluster.peers().len() != REPLICAS) {
        if Instant::now() > deadline {
            return Err("replicas did not discover each other within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for r in &replicas {
        let s = r.cluster.peers();
        let peers: Vec<String> = s
            .peers()
            .iter()
            .map(|p| format!("{}{}", p.ip, if p.is_self { " (self)" } else { "" }))
            .collect();
        println!(
            "      {} peer set, generation {}: {}",
            r.name,
            s.generation(),
            peers.join(", ")
        );
    }

    // 3. Read the object through every replica.
    let chunk_size = a.chunk_mib * 1024 * 1024;
    let object_size = chunk_size * a.chunks - chunk_size / 3; // a short tail chunk
    let key_of: Arc<dyn Fn(u64) -> ChunkKey + Send + Sync> = Arc::new(move |i| ChunkKey {
        origin_id: "demo-origin".into(),
        bucket: "models".into(),
        object_key: "llama/weights/shard-00001.safetensors".into(),
        etag: "9b2cf535f27731c974343645a3985328".into(),
        chunk_size,
        index: i,
    });
    println!(
        "\n[3/7] every replica reads models/llama/weights/shard-00001.safetensors ({:.1} MiB = {} chunks of {} MiB)",
        object_size as f64 / 1048576.0,
        a.chunks,
        a.chunk_mib
    );
    println!(
        "      a replica fetches the chunks it coordinates from the origin and asks the coordinator for the others"
    );
    let replicas = Arc::new(replicas);
    let progress = Arc::new(Progress {
        done: (0..REPLICAS).map(|_| AtomicU64::new(0)).collect(),
        total: a.chunks,
        bytes: AtomicU64::new(0),
        tty,
        started: Instant::now(),
    });
    let read_started = Instant::now();
    let all: Vec<u64> = (0..a.chunks).collect();
    let mut tasks = Vec::new();
    for r in 0..REPLICAS {
        tasks.push(tokio::spawn(read_object(
            replicas.clone(),
            r,
            key_of.clone(),
            all.clone(),
            object_size,
            progress.clone(),
        )));
    }
    let mut how: Vec<Vec<(u64, Source)>> = Vec::new();
    for t in tasks {
        how.push(t.await.map_err(|e| format!("reader task: {e}"))??);
    }
    if tty {
        println!();
    }
    let read_elapsed = read_started.elapsed();
    println!(
        "\n      chunk  coordinator        bytes   {}",
        (1..=REPLICAS)
            .map(|i| format!("{:<26}", format!("replica-{i}")))
            .collect::<String>()
    );
    let mut before: Vec<Peer> = Vec::new();
    for i in 0..a.chunks {
        let key = key_of(i);
        let c = replicas[0].cluster.coordinator(&key);
        before.push(c);
        let len = key.expected_len(object_size).unwrap_or(0);
        let cells: String = how
            .iter()
            .map(|per| {
                let cell = match per.iter().find(|(j, _)| *j == i).map(|(_, s)| s.clone()) {
                    Some(Source::Local) => "origin (coordinator)".to_string(),
                    Some(Source::Peer { from, mb_s }) => {
                        format!("from replica-{} {:>5.0} MB/s ", from.wrapping_add(1), mb_s)
                    }
                    Some(Source::Fallback) => "origin (fallback)".to_string(),
                    None => "-".into(),
                };
                format!("{cell:<26}")
            })
            .collect();
        println!(
            "      {:>5}  {:<12} {:>10}   {cells}",
            i,
            name_of(&replicas, &c),
            len
        );
    }
    let fetches: u64 = replicas.iter().map(|r| r.origin.fetches()).sum();
    let total_read = object_size * REPLICAS as u64;
    println!(
        "\n      {} chunk reads, {} origin fetches (each chunk fetched once cluster-wide); {:.0} MiB read in {:.2} s ({:.0} MB/s)",
        a.chunks * REPLICAS as u64,
        fetches,
        total_read as f64 / 1048576.0,
        read_elapsed.as_secs_f64(),
        mb_per_s(total_read, read_elapsed)
    );
    for r in replicas.iter() {
        let s = r.cluster.stats();
        println!(
            "      {}: coordinated {} chunk(s), served {} fill(s), received {} fill(s) ({:.0} MiB)",
            r.name,
            before.iter().filter(|c| c.ip == r.ip).count(),
            s.served_ok,
            s.fills_ok,
            s.bytes_received as f64 / 1048576.0
        );
    }
    if fetches != a.chunks {
        return Err(format!(
            "expected {} origin fetches, saw {fetches}",
            a.chunks
        ));
    }

    // 4. Coalescing: ten concurrent readers of one uncached chunk, through each replica.
    println!(
        "\n[4/7] ten concurrent readers of one uncached chunk, through each replica (the origin takes {} ms)",
        ORIGIN_LATENCY.as_millis()
    );
    for (r, reader) in replicas.iter().enumerate() {
        let key = ChunkKey {
            object_key: format!("llama/weights/shard-{:05}.safetensors", 100 + r),
            ..key_of(0)
        };
        let coordinator = reader.cluster.coordinator(&key);
        let before: u64 = replicas.iter().map(|r| r.origin.fetches()).sum();
        let reads = (0..10).map(|_| async {
            let read = reader
                .cluster
                .read(&key, object_size, &reader.filler)
                .await
                .map_err(|e| e.to_string())?;
            read.collect_bytes().await.map_err(|e| e.to_string())
        });
        for bytes in futures_util::future::join_all(reads).await {
            if bytes? != SyntheticOrigin::chunk_bytes(&key, object_size) {
                return Err(format!("{}: coalesced read: bytes differ", reader.name));
            }
        }
        let fetched = replicas.iter().map(|r| r.origin.fetches()).sum::<u64>() - before;
        println!(
            "      10 readers through {} of a chunk coordinated by {}: {fetched} origin fetch",
            reader.name,
            name_of(&replicas, &coordinator)
        );
        if fetched != 1 {
            return Err(format!(
                "expected 1 origin fetch for 10 concurrent readers, saw {fetched}"
            ));
        }
    }

    // 5. Kill replica-3 without removing it from DNS (a terminating pod stays in the answer).
    let gone = REPLICAS - 1;
    println!(
        "\n[5/7] killing {} ({}) without removing it from DNS; the others keep reading every chunk",
        replicas[gone].name, replicas[gone].ip
    );
    let killed = replicas[gone]
        .listener
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(listener) = killed {
        listener.shutdown(Duration::from_millis(200)).await;
    }
    for r in 0..gone {
        let reader = &replicas[r];
        let mut slowest = Duration::ZERO;
        let mut around = 0;
        for i in 0..a.chunks {
            let key = key_of(i);
            let t = Instant::now();
            let read = reader
                .cluster
                .read(&key, object_size, &reader.filler)
                .await
                .map_err(|e| format!("{} chunk {i}: {e}", reader.name))?;
            if let ReadSource::Fallback { error, .. } = read.source() {
                if around == 0 {
                    println!(
                        "      {}: {} is gone: {error}",
                        reader.name, replicas[gone].name
                    );
                }
                around += 1;
            }
            let bytes = read.collect_bytes().await.map_err(|e| e.to_string())?;
            if bytes != SyntheticOrigin::chunk_bytes(&key, object_size) {
                return Err(format!("{} chunk {i}: bytes differ", reader.name));
            }
            slowest = slowest.max(t.elapsed());
        }
        println!(
            "      {}: {} chunks verified, {around} read locally around the dead coordinator, slowest read {} ms",
            reader.name,
            a.chunks,
            slowest.as_millis()
        );
    }

    // 6. Remove replica-3 from DNS.
    println!(
        "\n[6/7] removing {} ({}) from DNS (scale-down); the others notice at their next refresh (every {:?})",
        replicas[gone].name, replicas[gone].ip, a.refresh
    );
    let removed_at = Instant::now();
    let mut subs: Vec<_> = replicas[..gone]
        .iter()
        .map(|r| r.cluster.subscribe())
        .collect();
    dns.set_records(SERVICE, &ips[..gone]);
    for (r, sub) in replicas[..gone].iter().zip(subs.iter_mut()) {
        let changed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match sub.changed().await {
                    Some(s) if !s.contains(ips[gone], 0) => return Some(s),
                    Some(_) => continue,
                    None => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("{} did not see the change within 10 s", r.name))?;
        println!(
            "      {} saw generation {} after {} ms: {}",
            r.name,
            changed.generation(),
            removed_at.elapsed().as_millis(),
            changed
                .peers()
                .iter()
                .map(|p| p.ip.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut moved = Vec::new();
    for i in 0..a.chunks {
        let key = key_of(i);
        let now = replicas[0].cluster.coordinator(&key);
        let again = replicas[1].cluster.coordinator(&key);
        if (now.ip, now.port) != (again.ip, again.port) {
            return Err(format!("chunk {i}: replicas disagree after the change"));
        }
        if now.ip != before[i as usize].ip {
            if before[i as usize].ip != ips[gone] {
                return Err(format!("chunk {i} moved although its coordinator stayed"));
            }
            moved.push((i, now));
        }
    }
    println!(
        "      {} of {} chunks moved, every one of them from {} (rendezvous hashing moves nothing else):",
        moved.len(),
        a.chunks,
        replicas[gone].name
    );
    for (i, to) in &moved {
        println!(
            "        chunk {:>3}: {} -> {}",
            i,
            replicas[gone].name,
            name_of(&replicas, to)
        );
    }

    // 7. Re-read the moved chunks through the remaining replicas.
    let indices: Vec<u64> = moved.iter().map(|(i, _)| *i).collect();
    println!(
        "\n[7/7] replica-1 and replica-2 read the moved chunks again from their new coordinators"
    );
    let fetches_before: u64 = replicas.iter().map(|r| r.origin.fetches()).sum();
    let progress = Arc::new(Progress {
        done: (0..gone).map(|_| AtomicU64::new(0)).collect(),
        total: indices.len() as u64,
        bytes: AtomicU64::new(0),
        tty,
        started: Instant::now(),
    });
    for r in 0..gone {
        let how = read_object(
            replicas.clone(),
            r,
            key_of.clone(),
            indices.clone(),
            object_size,
            progress.clone(),
        )
        .await?;
        let peers = how
            .iter()
            .filter(|(_, s)| matches!(s, Source::Peer { .. }))
            .count();
        if tty {
            println!();
        }
        println!(
            "      {}: {} chunk(s) verified ({} from a peer, {} as the new coordinator)",
            replicas[r].name,
            how.len(),
            peers,
            how.len() - peers
        );
    }
    let new_fetches: u64 =
        replicas.iter().map(|r| r.origin.fetches()).sum::<u64>() - fetches_before;
    println!(
        "      {new_fetches} new origin fetch(es): the new coordinators had read the moved chunks around the dead replica"
    );

    for r in replicas.iter() {
        r.cluster
            .close(Duration::from_secs(2))
            .await
            .map_err(|e| format!("{}: {e}", r.name))?;
    }
    let replicas = Arc::try_unwrap(replicas).map_err(|_| "replicas still in use".to_string())?;
    for r in replicas {
        let listener = r.listener.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(listener) = listener {
            listener.shutdown(Duration::from_secs(2)).await;
        }
    }
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
