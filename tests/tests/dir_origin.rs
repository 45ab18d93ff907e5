//! `DirOrigin` on both drivers' blocking pools, with a real directory: chunk ranges at chunk
//! boundaries and the short last chunk, frame sizes, the length check, a missing file, `..`
//! refused, and a chunk served through a replica's listener.

use orca_cluster_tests::harness::Driver;

/// A harness driver and the runtime `DirOrigin` reads on.
trait WithRuntime: Driver {
    /// The driver's runtime type (`Tokio`, `Smol`).
    type Runtime: orca_cluster_driver_common::Driver;
}

impl WithRuntime for orca_cluster_tests::harness::TokioDriver {
    type Runtime = orca_cluster_tokio::Tokio;
}

impl WithRuntime for orca_cluster_tests::harness::SmolDriver {
    type Runtime = orca_cluster_smol::Smol;
}

macro_rules! dir_origin_tests {
    ($module:ident, $driver:ty) => {
        mod $module {
            #[test]
            fn chunks_are_read_exactly_at_their_ranges() {
                <$driver as super::Driver>::run(
                    super::cases::chunks_are_read_exactly_at_their_ranges::<$driver>(),
                );
            }

            #[test]
            fn bad_requests_and_files_fail_with_typed_errors() {
                <$driver as super::Driver>::run(
                    super::cases::bad_requests_and_files_fail_with_typed_errors::<$driver>(),
                );
            }

            #[test]
            fn a_replica_serves_a_file_chunk_through_its_listener() {
                <$driver as super::Driver>::run(
                    super::cases::a_replica_serves_a_file_chunk_through_its_listener::<$driver>(),
                );
            }
        }
    };
}

dir_origin_tests!(tokio_driver, orca_cluster_tests::harness::TokioDriver);
dir_origin_tests!(smol_driver, orca_cluster_tests::harness::SmolDriver);

mod cases {
    use std::io;
    use std::path::PathBuf;

    use bytes::Bytes;
    use futures_lite::StreamExt;
    use orca_cluster_core::ChunkKey;
    use orca_cluster_core::fill::FillCheckError;
    use orca_cluster_driver_common::{
        DirOrigin, DirOriginError, FillError, FillRequest, Filler, StaticPeerSource,
    };
    use orca_cluster_test_support::TempDir;
    use orca_cluster_tests::harness::{
        ClusterHandle, Setup, bind_local, client_cluster, key, peer_at, replica, static_config,
    };

    use super::WithRuntime;

    const CHUNK: u64 = 64 * 1024;
    /// Three full chunks and a 1000-byte tail.
    const SIZE: u64 = 3 * CHUNK + 1000;

    /// The test object's bytes (not a repeating pattern of any chunk or frame size).
    fn object() -> Vec<u8> {
        (0..SIZE)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    /// A directory holding the object of [`key`] (`<bucket>/<object_key>`).
    fn origin_dir(data: &[u8]) -> (TempDir, PathBuf) {
        let dir = TempDir::new("dir-origin").unwrap();
        let k = key(0, CHUNK);
        let path = dir.path().join(&k.bucket).join(&k.object_key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        (dir, path)
    }

    fn request(key: ChunkKey, object_size: u64) -> FillRequest {
        let expected_len = key.expected_len(object_size).unwrap();
        FillRequest {
            key,
            object_size,
            expected_len,
        }
    }

    async fn frames(origin: &impl Filler, request: FillRequest) -> Vec<Bytes> {
        let stream = origin.fill(request).await.unwrap();
        stream.map(|frame| frame.unwrap()).collect().await
    }

    pub(super) async fn chunks_are_read_exactly_at_their_ranges<D: WithRuntime>() {
        let data = object();
        let (dir, _) = origin_dir(&data);
        let origin = DirOrigin::<D::Runtime>::new(dir.path()).with_frame_bytes(25_000);
        for index in 0..4 {
            let got = frames(&origin, request(key(index, CHUNK), SIZE)).await;
            let start = (index * CHUNK) as usize;
            let end = (start + CHUNK as usize).min(data.len());
            let lens: Vec<usize> = got.iter().map(Bytes::len).collect();
            if index < 3 {
                assert_eq!(lens, [25_000, 25_000, 15_536], "{} chunk {index}", D::NAME);
            } else {
                assert_eq!(lens, [1000], "{} last chunk", D::NAME);
            }
            assert!(
                got.concat() == data[start..end],
                "{} chunk {index} bytes",
                D::NAME
            );
        }
        // Default frames (1 MiB): one frame per 64 KiB chunk.
        let whole = DirOrigin::<D::Runtime>::new(dir.path());
        let got = frames(&whole, request(key(1, CHUNK), SIZE)).await;
        assert_eq!(got.len(), 1);
        assert!(got[0] == data[CHUNK as usize..2 * CHUNK as usize]);
    }

    pub(super) async fn bad_requests_and_files_fail_with_typed_errors<D: WithRuntime>() {
        let data = object();
        let (dir, path) = origin_dir(&data);
        std::fs::write(dir.path().join("outside"), b"secret").unwrap();
        let origin = DirOrigin::<D::Runtime>::new(dir.path().join("media bucket"));

        let typed =
            |e: Box<dyn std::error::Error + Send + Sync>| match e.downcast::<DirOriginError>() {
                Ok(e) => *e,
                Err(e) => panic!("{}: not a DirOriginError: {e}", D::NAME),
            };

        // The request's object size is not the file's length: both are named.
        let root = DirOrigin::<D::Runtime>::new(dir.path()).with_frame_bytes(4096);
        let e = typed(
            root.fill(request(key(0, CHUNK), SIZE + 1))
                .await
                .err()
                .unwrap(),
        );
        match &e {
            DirOriginError::Length {
                path: p,
                on_disk,
                object_size,
            } => {
                assert_eq!((p, *on_disk, *object_size), (&path, SIZE, SIZE + 1));
            }
            other => panic!("{}: expected Length, got {other:?}", D::NAME),
        }
        let message = e.to_string();
        assert!(message.contains(&SIZE.to_string()), "{message}");
        assert!(message.contains(&(SIZE + 1).to_string()), "{message}");

        // A missing file.
        let mut missing = key(0, CHUNK);
        missing.object_key = "videos/none.mp4".into();
        match typed(root.fill(request(missing, SIZE)).await.err().unwrap()) {
            DirOriginError::Open { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::NotFound)
            }
            other => panic!("{}: expected Open, got {other:?}", D::NAME),
        }

        // `..` is refused, in the bucket and in the object key, before any file is touched.
        for (bucket, object_key) in [("..", "outside"), ("x", "../../outside")] {
            let mut escape = key(0, 6);
            escape.bucket = bucket.into();
            escape.object_key = object_key.into();
            match typed(origin.fill(request(escape, 6)).await.err().unwrap()) {
                DirOriginError::Segment { segment, .. } => assert_eq!(segment, ".."),
                other => panic!("{}: expected Segment, got {other:?}", D::NAME),
            }
        }
    }

    pub(super) async fn a_replica_serves_a_file_chunk_through_its_listener<D: WithRuntime>() {
        let data = object();
        let (dir, _) = origin_dir(&data);
        let listener = bind_local::<D>(1).await.pop().unwrap();
        let addr = D::listener_addr(&listener);
        let setup =
            Setup::static_source(&StaticPeerSource::new([addr])).with_self_port(addr.port());
        let server = replica::<D>(
            listener,
            static_config(),
            setup,
            DirOrigin::<D::Runtime>::new(dir.path()).with_frame_bytes(10_000),
        )
        .await;
        let client = client_cluster::<D>(static_config(), false, &[addr]).await;
        for index in [0, 3] {
            let k = key(index, CHUNK);
            let bytes = client.fill(&peer_at(addr), &k, SIZE).await.unwrap();
            let start = (index * CHUNK) as usize;
            let end = (start + CHUNK as usize).min(data.len());
            assert!(bytes == data[start..end], "{} chunk {index}", D::NAME);
        }
        // The wrong object size fails the filler: 502.
        let e = client
            .fill(&peer_at(addr), &key(0, CHUNK), SIZE + 1)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                FillError::Check(FillCheckError::Status { code: 502, .. })
            ),
            "{}: {e}",
            D::NAME
        );
        client
            .close(std::time::Duration::from_secs(5))
            .await
            .unwrap();
        server.stop().await;
    }
}
