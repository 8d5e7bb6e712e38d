use super::*;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

fn file_with(data: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(data).unwrap();
    f
}

fn ring(register: bool, punt: bool) -> Option<Ring> {
    if crate::mode::select(crate::mode::IoMode::Uring).is_err() {
        // The sync path is covered by the `read_at` and `writer` tests; on a
        // kernel without io_uring there is no ring to test.
        return None;
    }
    Some(
        Ring::new(RingOptions {
            depth: 3,
            buf_size: 64 << 10,
            register,
            punt,
        })
        .unwrap(),
    )
}

/// Collects what `read_chunks` hands out, as (chunk length, bytes).
fn chunks(r: &mut Ring, file: &File, offset: u64, chunk: usize) -> (Vec<usize>, Vec<u8>) {
    let (mut lens, mut all) = (Vec::new(), Vec::new());
    r.read_chunks(file, offset, chunk, &mut |c| {
        lens.push(c.len());
        all.extend_from_slice(c);
        ControlFlow::Continue(())
    })
    .unwrap();
    (lens, all)
}

#[test]
fn chunked_reads_return_the_file_in_order() {
    let data = pattern(1_000_003);
    let file = file_with(&data);
    for (register, punt) in [(false, false), (false, true), (true, false), (true, true)] {
        let Some(mut r) = ring(register, punt) else {
            return;
        };
        if register {
            assert!(
                r.is_registered(),
                "3 × 64 KiB fit the default memlock limit"
            );
        }
        let chunk = 60_000;
        let (lens, all) = chunks(&mut r, &file, 3, chunk);
        assert!(all == data[3..], "register={register} punt={punt}");
        let last = lens.len() - 1;
        assert!(lens[..last].iter().all(|&l| l == chunk));
        assert_eq!(lens[last], (data.len() - 3) % chunk);
        // The ring is reusable, and a read at the end yields one empty chunk.
        assert_eq!(chunks(&mut r, &file, data.len() as u64, chunk).0, vec![0]);
        // An exact multiple ends with an empty chunk.
        let exact = file_with(&data[..chunk * 4]);
        assert_eq!(
            chunks(&mut r, &exact, 0, chunk).0,
            vec![chunk, chunk, chunk, chunk, 0]
        );
    }
}

#[test]
fn stopping_early_and_panicking_leave_the_ring_usable() {
    let data = pattern(900_000);
    let file = file_with(&data);
    let Some(mut r) = ring(false, true) else {
        return;
    };
    let mut seen = 0;
    r.read_chunks(&file, 0, 50_000, &mut |_| {
        seen += 1;
        if seen == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(seen, 2);

    // A panicking callback unwinds with reads in flight; the ring's buffers
    // stay owned by the ring, and the next call settles them first.
    let caught = catch_unwind(AssertUnwindSafe(|| {
        r.read_chunks(&file, 0, 50_000, &mut |_| panic!("callback failed"))
    }));
    assert!(caught.is_err());
    let (_, all) = chunks(&mut r, &file, 0, 50_000);
    assert!(all == data);
}

#[test]
fn read_errors_and_bad_chunks_are_reported() {
    let Some(mut r) = ring(false, false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A directory cannot be read: EISDIR from the kernel.
    let d = File::open(dir.path()).unwrap();
    let err = r
        .read_chunks(&d, 0, 4096, &mut |_| ControlFlow::Continue(()))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
    let file = file_with(b"abc");
    let err = r
        .read_chunks(&file, 0, 1 << 20, &mut |_| ControlFlow::Continue(()))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(chunks(&mut r, &file, 0, 4096).1, b"abc");
}

#[test]
fn fsync_goes_through_the_ring() {
    let Some(mut r) = ring(false, false) else {
        return;
    };
    let file = file_with(b"durable");
    r.fsync(&file).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ro = File::open(dir.path()).unwrap();
    // fsync of a directory opened read-only is allowed on Linux.
    r.fsync(&ro).unwrap();
}
