//! Loom models of the RwLock's races (the counted core with a writer taking every
//! permit). Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release`
#![cfg(loom)]

use std::sync::Arc;

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;
use loom_tests::model;
use ownsync::{AcquireError, RwLock};

const WRITER: usize = 1 << 16;

/// A reader and a writer on two threads (parking, FIFO hand-off both ways): never a
/// writer together with anyone, and the write lands.
#[test]
fn reader_writer_handoff_excludes() {
    model(|| {
        let lock = Arc::new(RwLock::with_max_readers(0usize, 2));
        let inside = Arc::new(AtomicUsize::new(0));
        let reader = {
            let (lock, inside) = (lock.clone(), inside.clone());
            thread::spawn(move || {
                let guard = lock.blocking_read().unwrap();
                assert_eq!(inside.fetch_add(1, SeqCst) & WRITER, 0, "a reader beside the writer");
                let seen = *guard;
                inside.fetch_sub(1, SeqCst);
                seen
            })
        };
        {
            let mut guard = lock.blocking_write().unwrap();
            assert_eq!(inside.fetch_add(WRITER, SeqCst), 0, "the writer beside someone");
            *guard += 1;
            inside.fetch_sub(WRITER, SeqCst);
        }
        let seen = reader.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(*lock.try_read().unwrap(), 1);
    });
}

/// A write guard is downgraded while another thread waits to write: no writer gets in
/// between (the downgraded reader sees its own write), and the waiting writer goes next.
#[test]
fn downgrade_races_a_writer() {
    model(|| {
        let lock = Arc::new(RwLock::with_max_readers(0usize, 2));
        let mut guard = lock.try_write().unwrap();
        let writer = {
            let lock = lock.clone();
            thread::spawn(move || *lock.blocking_write().unwrap() = 2)
        };
        *guard = 1;
        let read = guard.downgrade();
        assert_eq!(*read, 1, "a writer got in between");
        drop(read);
        writer.join().unwrap();
        assert_eq!(*lock.try_read().unwrap(), 2);
    });
}

/// A thread ends holding the write lock while a reader parks for it: the reader is
/// woken with `Broken`, never left parked.
#[test]
fn a_break_races_a_parked_reader() {
    model(|| {
        let lock = Arc::new(RwLock::with_max_readers((), 2));
        let (tx, rx) = loom::sync::mpsc::channel();
        let holder = {
            let lock = lock.clone();
            thread::spawn(move || {
                std::mem::forget(lock.blocking_write().unwrap());
                tx.send(()).unwrap();
            })
        };
        rx.recv().unwrap();
        assert!(matches!(lock.blocking_read(), Err(AcquireError::Broken(_))));
        holder.join().unwrap();
    });
}

/// A write guard its task answers for (handed over) is downgraded on one thread while
/// the task exits on another. Whichever comes first, the task abandoned a hold of the
/// lock: it breaks, once, in the task's name (a read hold breaks an RwLock too: its
/// guard may still be read), the downgraded guard still reads the write, and once it is
/// dropped every permit is back, so a repair finds no guard left.
#[test]
fn downgrade_races_the_owners_exit() {
    model(|| {
        let lock = Arc::new(RwLock::with_max_readers(0usize, 2));
        let task = Box::pin(ownsync::tracked(std::future::pending::<()>()));
        let task_id = task.owner();
        let mut guard = lock.clone().try_write_owned().unwrap();
        ownsync::OwnedRwLockWriteGuard::hand_to(&mut guard, task_id).unwrap();
        *guard = 1;
        let exit = thread::spawn(move || drop(task));
        let read = guard.downgrade();
        exit.join().unwrap();
        assert_eq!(*read, 1, "a writer got in between");
        let broken = match lock.try_write() {
            Err(ownsync::TryLockError::Broken(err)) => err,
            other => panic!("the exit abandoned nothing: {other:?}"),
        };
        assert_eq!(broken.owner(), task_id);
        assert_eq!(lock.statistics().abandoned().count(), 1, "abandoned exactly once");
        assert!(lock.try_repair().is_err(), "the read guard is still out");
        drop(read);
        lock.try_repair().expect("every guard is gone").mark_consistent();
        assert_eq!(*lock.try_read().unwrap(), 1);
    });
}
