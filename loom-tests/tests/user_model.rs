//! A model written the way a user of ownsync writes one for their own code (README,
//! "Model-check your own code with loom"): only ownsync's public API, `loom::model`,
//! `loom::thread` and `loom::future::block_on`. Built with `--cfg loom`, ownsync's
//! atomics, locks and thread-locals are loom's, so loom explores ownsync's interleavings
//! together with the user's. CI runs it so that this keeps working.
#![cfg(loom)]

use std::sync::Arc;

use ownsync::{AcquireError, Mutex, tracked};

/// The user's code: a transfer between two accounts behind one mutex.
fn transfer(accounts: &Mutex<[i64; 2]>, amount: i64) -> Result<(), AcquireError> {
    let mut balances = accounts.blocking_lock()?;
    balances[0] -= amount;
    balances[1] += amount;
    Ok(())
}

/// Two threads transfer at once: money is conserved in every interleaving.
#[test]
fn concurrent_transfers_conserve_money() {
    loom::model(|| {
        let accounts = Arc::new(Mutex::new([100, 0]));
        let other = {
            let accounts = accounts.clone();
            loom::thread::spawn(move || transfer(&accounts, 30))
        };
        transfer(&accounts, 20).unwrap();
        other.join().unwrap().unwrap();
        let balances = *accounts.try_lock().unwrap();
        assert_eq!(balances, [50, 50]);
    });
}

/// A tracked task of the user's that leaks its guard: a waiter on another thread gets
/// `Broken` in every interleaving, never a hang.
#[test]
fn a_leaking_task_breaks_the_mutex_for_its_waiter() {
    loom::model(|| {
        let accounts = Arc::new(Mutex::new([100, 0]));
        let task = tracked({
            let accounts = accounts.clone();
            async move { std::mem::forget(accounts.lock().await.unwrap()) }
        });
        loom::future::block_on(task);
        let waiter = {
            let accounts = accounts.clone();
            loom::thread::spawn(move || transfer(&accounts, 1))
        };
        assert!(matches!(waiter.join().unwrap(), Err(AcquireError::Broken(_))));
    });
}
