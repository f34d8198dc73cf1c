//! Unit tests that reach every `unsafe` block of this file, so Miri checks them.

use super::*;

#[test]
fn guards_map_downgrade_and_debug_are_sound() {
    let lock = Arc::new(RwLock::new((1u8, String::from("a"))));
    {
        let mut w = lock.try_write().unwrap();
        w.1.push('b');
        let mut mapped = RwLockWriteGuard::map(w, |pair| &mut pair.1);
        mapped.push('c');
        let mut text = RwLockMappedWriteGuard::map(mapped, |text| text);
        text.insert(0, 'z');
        assert_eq!(format!("{lock:?}"), "RwLock { data: <locked>, writer: None }");
    }
    assert_eq!(format!("{lock:?}"), "RwLock { data: (1, \"zabc\"), writer: None }");
    let r = RwLockWriteGuard::downgrade_map(lock.try_write().unwrap(), |pair| &pair.1);
    assert_eq!(*r, "zabc");
    let r2 = RwLockReadGuard::map(lock.try_read().unwrap(), |pair| &pair.0);
    assert_eq!((r.len(), *r2), (4, 1));
    drop((r, r2));
    let owned = lock.clone().try_write_owned().unwrap();
    let mut owned = OwnedRwLockWriteGuard::map(owned, |pair| &mut pair.0);
    *owned = 2;
    let owned = OwnedRwLockMappedWriteGuard::map(owned, |n| n);
    drop(owned);
    let read = OwnedRwLockWriteGuard::downgrade_map(lock.clone().try_write_owned().unwrap(), |p| &p.1);
    let read = OwnedRwLockReadGuard::map(read, |text| text.as_str());
    assert_eq!(&*read, "zabc");
    assert_eq!(lock.statistics().readers(), 1);
    drop(read);
    let read = OwnedRwLockReadGuard::try_map(lock.clone().try_read_owned().unwrap(), |_| None::<&u8>);
    drop(read.unwrap_err());
    assert_eq!(Arc::try_unwrap(lock).ok().unwrap().into_inner().0, 2);
}
