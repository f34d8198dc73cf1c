//! Unit tests of owner records, slabs, tickets, exits and hand-overs.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use super::record::{OwnerBody, RecordRef, read_word, spare_body};
use super::slabs::KEPT_LIVE_SLAB_CAPACITY;
use super::*;
use crate::error::AbandonReason;

#[test]
fn ids_are_unique_and_display_by_kind() {
    let a = OwnerId::next_task();
    let b = OwnerId::next_task();
    assert_ne!(a, b);
    assert_eq!(a.to_string(), format!("task#{}", a.number()));
    let t = OwnerId::next_thread();
    assert!(t.is_thread() && !t.is_task());
    assert!(t.to_string().starts_with("thread#"));
    assert_eq!(OwnerId::from_u64(a.as_u64()), Some(a));
    assert_eq!(OwnerId::from_u64(0), None);
}

#[test]
fn named_thread_ids_show_the_name_while_alive() {
    let id = std::thread::Builder::new()
        .name("worker-7".into())
        .spawn(|| {
            let id = current_owner();
            assert_eq!(id.to_string(), format!("thread#{} (worker-7)", id.number()));
            id
        })
        .unwrap()
        .join()
        .unwrap();
    // The thread ended: its name is no longer kept for the bare id.
    assert_eq!(id.to_string(), format!("thread#{}", id.number()));
}

struct CountAbandons(std::sync::Mutex<Vec<(OwnerId, AbandonReason, usize)>>, AtomicU64);
impl Abandon for CountAbandons {
    fn abandon(&self, owner: &Abandoner, reason: AbandonReason, permits: usize, _: Site) {
        self.0.lock().unwrap().push((owner.id, reason, permits));
    }
    fn orphan(&self, _: &Abandoner, _: usize, _: Site, _: OrphanTag) {
        self.1.fetch_add(1, Relaxed);
    }
    fn adopt_orphan(&self, _: OrphanTag) {
        self.1.fetch_sub(1, Relaxed);
    }
}
impl CountAbandons {
    fn new() -> Arc<Self> {
        Arc::new(CountAbandons(std::sync::Mutex::new(Vec::new()), AtomicU64::new(0)))
    }
    fn orphans(&self) -> u64 {
        self.1.load(Relaxed)
    }
    fn seen(&self) -> Vec<(OwnerId, AbandonReason, usize)> {
        self.0.lock().unwrap().clone()
    }
}

/// Registers `permits` to `owner` from inside its context, as an acquire in its poll.
fn register_in(owner: &Arc<OwnerInner>, sink: &Arc<CountAbandons>, permits: usize) -> Option<HoldTicket> {
    let _scope = CurrentTaskScope::enter(owner);
    let (id, ticket) = register_hold(Caller::Async, permits, sink, false, None).unwrap();
    assert_eq!(id, owner.id());
    ticket
}

#[test]
fn exit_abandons_registered_holds_once_and_release_wins_before_it() {
    let owner = OwnerInner::new_task();
    let sink = CountAbandons::new();
    let released = register_in(&owner, &sink, 1).unwrap();
    let leaked = register_in(&owner, &sink, 3).unwrap();
    {
        let _scope = CurrentTaskScope::enter(&owner);
        assert_eq!(owner.registered_holds(), 2);
        assert_eq!(released.unregister(), Claim::Ours, "released in the owner's context, before the exit");
        assert_eq!(owner.registered_holds(), 1);
    }
    owner.exit(AbandonReason::Cancelled);
    owner.exit(AbandonReason::Exited); // ignored: already exited
    assert_eq!(sink.seen(), vec![(owner.id(), AbandonReason::Cancelled, 3)]);
    // The exit took a count of the record for the leaked hold's ticket...
    assert_eq!(Arc::strong_count(&owner), 2);
    // ...which claimed the hold: releasing it now must not release it twice.
    assert_eq!(leaked.unregister(), Claim::Abandoned);
    assert_eq!(Arc::strong_count(&owner), 1, "the ticket gave the exit's count back");
    // Registering to an exited owner fails: the hold stays anonymous.
    assert!(register_in(&owner, &sink, 1).is_none());
}

#[test]
fn an_exit_frees_the_body_and_a_leaked_ticket_keeps_only_the_head() {
    // The head, with `Arc`'s two counts, is what a leaked hold costs: 24 bytes.
    #[cfg(target_pointer_width = "64")]
    assert_eq!(std::mem::size_of::<OwnerInner>(), 8);
    let owner = OwnerInner::new_task();
    let id = owner.id();
    let sink = CountAbandons::new();
    let leaked = register_in(&owner, &sink, 2).unwrap();
    owner.exit(AbandonReason::Panicked);
    assert_eq!(read_word(owner.body.load(Relaxed)).err(), Some(AbandonReason::Panicked));
    assert!(owner.has_exited());
    assert_eq!(Arc::strong_count(&sink), 1, "the body's entries went with it");
    // What a leaked ticket may still ask, the head answers: who, and why it is gone.
    assert_eq!(leaked.owner_id(), Some(owner.id()));
    assert_eq!(leaked.answering_owner(), None, "nobody answers for it any more");
    assert_eq!(leaked.site(), None);
    let again = RecordRef::of(&owner).register(sink.clone(), 1, false, None);
    assert_eq!(again.err(), Some(AbandonReason::Panicked), "the reason outlives the body");
    std::mem::forget(leaked);
    assert_eq!(Arc::strong_count(&owner), 2, "the leaked ticket's count keeps the head");
    assert_eq!(owner.id(), id, "the id outlives the body");
    // A thread's id too, with every exit reason.
    for reason in [AbandonReason::Exited, AbandonReason::Cancelled, AbandonReason::Panicked] {
        let thread = Arc::new(OwnerInner::new(OwnerId::next_thread(), None));
        let id = thread.id();
        thread.exit(reason);
        assert_eq!((thread.id(), read_word(thread.body.load(Relaxed)).err()), (id, Some(reason)));
        assert!(thread.id().is_thread());
    }
}

#[test]
fn a_record_made_after_an_exit_on_the_same_thread_reuses_its_body() {
    let first = OwnerInner::new_task();
    let sink = CountAbandons::new();
    let _released = register_in(&first, &sink, 1).unwrap().unregister();
    let body = first.body.load(Relaxed);
    first.exit(AbandonReason::Exited);
    assert!(spare_body::is_kept(body), "the exit kept its body as this thread's spare");
    let second = OwnerInner::new_task();
    assert_eq!(second.body.load(Relaxed), body, "the second record took the spare");
    assert!(!spare_body::is_kept(body));
    // SAFETY: nothing but this thread reaches `second`: it is its only context.
    let kept = unsafe { second.with_local(|local| (local.holds.len(), local.holds.capacity())) };
    assert!(matches!(kept, Some((0, 1..))), "with the first one's empty slab: {kept:?}");
    // SAFETY: nothing but this thread reaches `second`: it is its only context.
    assert_eq!(unsafe { second.body() }.map(OwnerBody::live_holds).ok(), Some(0), "as new");
    second.exit(AbandonReason::Exited);
}

#[test]
fn a_spare_body_lets_a_large_slab_go() {
    let first = OwnerInner::new_task();
    let sink = CountAbandons::new();
    let many: Vec<_> = (0..40).map(|_| register_in(&first, &sink, 1).unwrap()).collect();
    {
        let _scope = CurrentTaskScope::enter(&first);
        many.into_iter().for_each(|ticket| assert_eq!(ticket.unregister(), Claim::Ours));
    }
    first.exit(AbandonReason::Exited);
    let second = OwnerInner::new_task();
    // SAFETY: nothing but this thread reaches `second`: it is its only context.
    let capacity = unsafe { second.with_local(|local| local.holds.capacity()) };
    assert_eq!(capacity, Some(0), "a 40-entry slab is not kept for every later task");
    second.exit(AbandonReason::Exited);
}

/// A live record (a thread's lives as long as the thread) lets go of the room a
/// burst of holds grew once they are released, and keeps its spare entry.
#[test]
fn a_live_record_lets_a_burst_of_holds_room_go() {
    let owner = OwnerInner::new_task();
    let sink = CountAbandons::new();
    let burst: Vec<_> =
        (0..4 * KEPT_LIVE_SLAB_CAPACITY).map(|_| register_in(&owner, &sink, 1).unwrap()).collect();
    let scope = CurrentTaskScope::enter(&owner);
    // SAFETY (both): in the owner's context, the only one that reaches its local holds.
    let capacity = || unsafe { owner.with_local(|local| local.holds.capacity()) }.unwrap();
    assert!(capacity() >= burst.len());
    burst.into_iter().for_each(|ticket| assert_eq!(ticket.unregister(), Claim::Ours));
    assert!(capacity() <= KEPT_LIVE_SLAB_CAPACITY, "kept room for {} holds", capacity());
    let spare = unsafe { owner.with_local(|local| local.spare.map(|key| local.holds[key].permits)) };
    assert_eq!(spare, Some(Some(1)), "the spare entry is kept, in the new slab");
    let again = register_in(&owner, &sink, 1).unwrap();
    assert_eq!(again.unregister(), Claim::Ours);
    drop(scope);
    owner.exit(AbandonReason::Exited);
    assert!(sink.seen().is_empty(), "nothing was abandoned");
}

#[test]
fn a_primitive_released_here_is_reused_without_a_clone_and_let_go_at_exit() {
    let owner = OwnerInner::new_task();
    let (first, second) = (CountAbandons::new(), CountAbandons::new());
    let ticket = register_in(&owner, &first, 1).unwrap();
    assert_eq!(Arc::strong_count(&first), 2, "the entry's clone");
    {
        let _scope = CurrentTaskScope::enter(&owner);
        assert_eq!(ticket.unregister(), Claim::Ours);
    }
    assert_eq!(Arc::strong_count(&first), 2, "kept as the spare");
    let again = register_in(&owner, &first, 1).unwrap();
    assert_eq!(Arc::strong_count(&first), 2, "the spare was reused, not cloned");
    let other = register_in(&owner, &second, 1).unwrap();
    assert_eq!(Arc::strong_count(&second), 2, "another primitive is cloned");
    {
        let _scope = CurrentTaskScope::enter(&owner);
        assert_eq!(again.unregister(), Claim::Ours);
        assert_eq!(other.unregister(), Claim::Ours);
    }
    assert_eq!(Arc::strong_count(&first), 1, "the newer release replaced the spare");
    owner.exit(AbandonReason::Exited);
    assert_eq!(Arc::strong_count(&second), 1, "the exit lets the spare go");
    assert!(first.seen().is_empty() && second.seen().is_empty());
}

#[test]
fn holds_released_elsewhere_are_not_abandoned_and_their_keys_are_recycled() {
    let owner = OwnerInner::new_task();
    let sink = CountAbandons::new();
    let moved = register_in(&owner, &sink, 1).unwrap();
    let kept = register_in(&owner, &sink, 2).unwrap();
    // Released on another thread: through the lock, and the exit must skip it.
    std::thread::spawn(move || assert_eq!(moved.unregister(), Claim::Ours)).join().unwrap();
    let again = register_in(&owner, &sink, 4).unwrap(); // sweeps the released key
    {
        let _scope = CurrentTaskScope::enter(&owner);
        assert_eq!(owner.registered_holds(), 2);
        assert_eq!(kept.unregister(), Claim::Ours);
    }
    owner.exit(AbandonReason::Exited);
    assert_eq!(sink.seen(), vec![(owner.id(), AbandonReason::Exited, 4)]);
    drop(again); // dropping an abandoned ticket gives the exit's count back too
    assert_eq!(Arc::strong_count(&owner), 1);
}

#[test]
fn a_release_elsewhere_racing_the_exit_is_decided_once() {
    let owner = OwnerInner::new_task();
    let sink = CountAbandons::new();
    let ticket = register_in(&owner, &sink, 1).unwrap();
    let released = std::thread::scope(|scope| {
        let release = scope.spawn(move || ticket.unregister() == Claim::Ours);
        owner.exit(AbandonReason::Exited);
        release.join().unwrap()
    });
    let abandoned = sink.seen().len();
    assert_eq!(usize::from(released) + abandoned, 1, "released or abandoned, exactly once");
    assert_eq!(Arc::strong_count(&owner), 1, "no count is lost or leaked either way");
}

#[test]
fn permits_changed_elsewhere_move_to_the_shared_slab() {
    let owner = OwnerInner::new_task();
    let sink = CountAbandons::new();
    let mut ticket = register_in(&owner, &sink, 5).unwrap();
    let primitive = || sink.clone() as Arc<dyn Abandon>;
    let sibling = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                assert!(ticket.set_permits(3, primitive));
                ticket.register_sibling(2, primitive()).unwrap()
            })
            .join()
            .unwrap()
    });
    {
        let _scope = CurrentTaskScope::enter(&owner);
        assert_eq!(owner.registered_holds(), 2);
    }
    owner.exit(AbandonReason::Panicked);
    let mut seen = sink.seen();
    seen.sort_by_key(|(_, _, permits)| *permits);
    assert_eq!(
        seen,
        vec![(owner.id(), AbandonReason::Panicked, 2), (owner.id(), AbandonReason::Panicked, 3)]
    );
    assert_eq!(ticket.unregister(), Claim::Abandoned);
    assert_eq!(sibling.unregister(), Claim::Abandoned);
    assert_eq!(Arc::strong_count(&owner), 1);
}

#[test]
fn a_thread_owner_registers_on_its_own_thread_and_exits_with_it() {
    let sink = CountAbandons::new();
    let (id, ticket) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let (id, ticket) = register_hold(Caller::Blocking, 1, &sink, false, None).unwrap();
                assert!(id.is_thread());
                (id, ticket.unwrap())
            })
            .join()
            .unwrap()
    });
    // The thread ended holding it: abandoned, and the ticket outlives the record's
    // thread-local but not the record.
    assert_eq!(sink.seen(), vec![(id, AbandonReason::Exited, 1)]);
    assert_eq!(ticket.owner_id(), Some(id));
    assert_eq!(ticket.unregister(), Claim::Abandoned);
}

#[test]
fn an_exit_orphans_moving_holds_and_a_live_owner_is_found_by_its_published_id() {
    let owner = OwnerInner::new_task();
    let sink = CountAbandons::new();
    let (moving, certain) = {
        let _scope = CurrentTaskScope::enter(&owner);
        let (_, moving) = register_hold(Caller::Async, 2, &sink, true, None).unwrap();
        let (_, certain) = register_hold(Caller::Async, 1, &sink, false, None).unwrap();
        (moving.unwrap(), certain.unwrap())
    };
    assert!(moving.moves() && !certain.moves());
    assert!(!is_live_owner(owner.id()), "not published: not found by id");
    owner.publish();
    assert!(is_live_owner(owner.id()));
    let handed = register_to(owner.id(), sink.clone(), 4, None).unwrap();
    owner.exit(AbandonReason::Exited);
    assert!(!is_live_owner(owner.id()), "the exit unpublishes");
    assert_eq!(register_to(owner.id(), sink.clone(), 1, None).err(), Some(OwnerGone(owner.id())));
    let mut seen = sink.seen();
    seen.sort_by_key(|(_, _, permits)| *permits);
    assert_eq!(seen, [(owner.id(), AbandonReason::Exited, 1), (owner.id(), AbandonReason::Exited, 4)]);
    assert_eq!(sink.orphans(), 1, "the moving hold is orphaned, not abandoned");
    assert_eq!(moving.unregister(), Claim::Orphaned);
    assert_eq!(certain.unregister(), Claim::Abandoned);
    assert_eq!(handed.unregister(), Claim::Abandoned);
    assert_eq!(Arc::strong_count(&owner), 1, "every ticket gave the exit's count back");
}

#[test]
fn a_hand_over_moves_the_registration_and_a_gone_target_leaves_it() {
    let (old, new) = (OwnerInner::new_task(), OwnerInner::new_task());
    new.publish();
    let sink = CountAbandons::new();
    let primitive = || sink.clone() as Arc<dyn Abandon>;
    let ticket = register_in(&old, &sink, 2).unwrap();
    let HandedOver::To(ticket) = hand_over(Some(ticket), new.id(), 2, &primitive, None) else {
        panic!("a live, published target takes it")
    };
    assert_eq!(ticket.owner_id(), Some(new.id()));
    old.exit(AbandonReason::Exited);
    assert!(sink.seen().is_empty(), "the old owner answers for nothing any more");
    new.exit(AbandonReason::Cancelled);
    assert_eq!(sink.seen(), [(new.id(), AbandonReason::Cancelled, 2)]);
    // The new owner is gone: a hand-over to it leaves the hold as it was.
    let other = OwnerInner::new_task();
    let kept = register_in(&other, &sink, 1).unwrap();
    let HandedOver::TargetGone(Some(kept)) = hand_over(Some(kept), new.id(), 1, &primitive, None) else {
        panic!("an exited target takes nothing")
    };
    assert_eq!(kept.owner_id(), Some(other.id()));
    assert!(matches!(hand_over(None, new.id(), 1, &primitive, None), HandedOver::TargetGone(None)));
    // A dead ticket (an abandoned hold) is never handed over, and never dereferenced.
    assert_eq!(ticket.unregister(), Claim::Abandoned);
    let HandedOver::Abandoned(dead) = hand_over(Some(HoldTicket::dead()), other.id(), 1, &primitive, None)
    else {
        panic!("an abandoned hold stays abandoned")
    };
    assert_eq!(dead.owner_id(), None);
    {
        let _scope = CurrentTaskScope::enter(&other);
        assert_eq!(kept.unregister(), Claim::Ours);
    }
    assert_eq!((Arc::strong_count(&old), Arc::strong_count(&new)), (1, 1));
}
