//! The process-wide view (feature `diagnostics`): every live mutex, RwLock, semaphore
//! and limiter, and the wait-for graph among their owners.
//!
//! Why a registry and not a walk of the owners: a hold's record lives in its owner's
//! context, which another thread may not read, while a primitive's lot is readable
//! under its lock by anyone. So each primitive registers a weak reference when it is
//! built (a global lock per primitive created, nothing per acquire), and a snapshot
//! reads the lots. What a lot does not know is who holds counted permits; but only an
//! owner that waits can be part of a deadlock, and a waiter records what its owner held
//! when it queued (a read of its own context). That is enough for every cycle.
//!
//! The cycle search is bounded by the graph: nodes are owners, edges go from each
//! waiter to each holder of what it waits for (E <= sum over primitives of waiters x
//! holders). Strongly connected components (Tarjan, iterative, O(V + E)) find every
//! owner that is on some cycle; one shortest cycle is reported per component (a breadth
//! first search inside it, O(V + E) again). A self-wait (an owner waiting for itself,
//! as sub-futures of one task taking turns do) is not an edge: it is shown as a self-wait.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};

use crate::core::SemCore;
use crate::error::{BrokenResourceError, PrimitiveKind};
use crate::id::OwnerId;
use crate::info::{Held, HoldInfo, OrphanInfo, PermitCounts, ShowDuration, ShowSite, Site, WaitInfo};

/// A primitive the registry can reach: its counted core, and the identity its holds are
/// registered under (the `Arc` the owner's exit hands them back to).
pub(crate) trait Diagnosed: Send + Sync {
    fn core(&self) -> &SemCore;
    /// The counted holds the primitive itself can list (a limiter's borrowers), if it
    /// keeps any; the snapshot then takes no other source's list of them.
    fn counted_holds(&self) -> Vec<HoldInfo> {
        Vec::new()
    }
}

impl Diagnosed for SemCore {
    fn core(&self) -> &SemCore {
        self
    }
}

struct Registry {
    primitives: Vec<Weak<dyn Diagnosed>>,
    /// How many were alive at the last sweep of dead entries.
    live_at_sweep: usize,
}

static REGISTRY: std::sync::Mutex<Registry> =
    std::sync::Mutex::new(Registry { primitives: Vec::new(), live_at_sweep: 0 });

/// Adds a primitive to the registry. Dead entries are swept when the registry has
/// doubled since the last sweep, so the cost stays O(1) amortized per primitive.
pub(crate) fn track<P: Diagnosed + 'static>(primitive: &Arc<P>) {
    let weak = Arc::downgrade(primitive) as Weak<dyn Diagnosed>;
    let mut registry = REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if registry.primitives.len() >= 2 * registry.live_at_sweep.max(32) {
        registry.primitives.retain(|primitive| primitive.strong_count() > 0);
        registry.live_at_sweep = registry.primitives.len();
    }
    registry.primitives.push(weak);
}

/// A primitive in a [`Snapshot`].
#[derive(Clone)]
pub struct PrimitiveSnapshot {
    kind: PrimitiveKind,
    name: Option<Arc<str>>,
    holds: Vec<HoldInfo>,
    waits: Vec<WaitInfo>,
    orphans: Vec<OrphanInfo>,
    broken: Option<BrokenResourceError>,
    anonymous_holds: u64,
    cut_short: crate::core::CutShort,
    /// A counted primitive's permits (a semaphore's, a limiter's tokens).
    permits: Option<PermitCounts>,
    /// Whether the primitive lists its counted holds itself (a limiter).
    lists_its_holds: bool,
    identity: usize,
}

impl fmt::Debug for PrimitiveSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimitiveSnapshot")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("permits", &self.permits)
            .field("holds", &self.holds)
            .field("waits", &self.waits)
            .field("orphans", &self.orphans)
            .field("broken", &self.broken)
            .field("anonymous_holds", &self.anonymous_holds)
            .field("cut_short", &self.cut_short)
            .finish()
    }
}

impl PrimitiveSnapshot {
    /// What kind of primitive it is.
    pub fn kind(&self) -> PrimitiveKind {
        self.kind
    }
    /// Its name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// Its exclusive hold, and the counted holds (permits, tokens, read guards) that can
    /// be found: every token of a limiter that some owner answers for; the permits and
    /// read guards of owners that wait somewhere (what they held when they queued); and
    /// those handed to an owner from elsewhere (`hand_to`, `tracked_with`). The rest of
    /// a counted primitive's held permits are counted in [`permits`](Self::permits)
    /// (`unlisted`), never left out silently.
    pub fn holds(&self) -> &[HoldInfo] {
        &self.holds
    }
    /// A semaphore's or a limiter's permits: free, total, held, and how many held ones
    /// no listed hold or orphan accounts for. `None` for the other primitives.
    pub fn permits(&self) -> Option<PermitCounts> {
        self.permits
    }
    /// Its queued waiters, in queue order.
    pub fn waits(&self) -> &[WaitInfo] {
        &self.waits
    }
    /// Its orphaned owned holds.
    pub fn orphans(&self) -> &[OrphanInfo] {
        &self.orphans
    }
    /// Why it is broken, if it is.
    pub fn broken(&self) -> Option<&BrokenResourceError> {
        self.broken.as_ref()
    }
    /// Holds it gave so far to tokio tasks that are not owners: nobody answers for them
    /// (see `anonymous_holds()` in each primitive's statistics).
    pub fn anonymous_holds(&self) -> u64 {
        self.anonymous_holds
    }
    /// Its critical sections cut short by a cancellation (a lock's; see
    /// [`MutexStatistics::cut_short`](crate::mutex::MutexStatistics::cut_short)).
    pub fn cut_short(&self) -> crate::core::CutShort {
        self.cut_short
    }
    /// The address of the primitive, the same in every snapshot while it lives.
    pub(crate) fn identity(&self) -> usize {
        self.identity
    }
    fn is_idle(&self) -> bool {
        self.holds.is_empty()
            && self.waits.is_empty()
            && self.orphans.is_empty()
            && self.broken.is_none()
            && self.cut_short.count() == 0
            && self.permits.is_none_or(|permits| permits.held == 0)
    }
}

impl fmt::Display for PrimitiveSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        if let Some(permits) = &self.permits {
            write!(f, ": {permits}")?;
        }
        if let Some(broken) = &self.broken {
            write!(f, " (broken: {broken})")?;
        }
        writeln!(f)?;
        for hold in &self.holds {
            write!(f, "    held by {}", owner(hold.owner))?;
            if hold.permits != 1 {
                write!(f, " ({} permits)", hold.permits)?;
            }
            write!(f, ", taken at {}", ShowSite(hold.site))?;
            match hold.held_for {
                Some(held) => writeln!(f, ", for at least {}", ShowDuration(held))?,
                None => writeln!(f)?,
            }
        }
        for wait in &self.waits {
            let shape = if wait.self_wait { " [self-wait: its own owner holds it]" } else { "" };
            writeln!(
                f,
                "    waited for by {} at {}, for {}{shape}",
                owner(wait.owner),
                ShowSite(wait.site),
                ShowDuration(wait.waited_for)
            )?;
        }
        if let Some((owner, site)) = self.cut_short.last() {
            writeln!(
                f,
                "    {} section(s) cut short by a cancellation, the last by {owner} (taken at {})",
                self.cut_short.count(),
                ShowSite(site)
            )?;
        }
        for orphan in &self.orphans {
            writeln!(
                f,
                "    orphaned: {} permit(s) taken at {} by {}, which exited",
                orphan.permits,
                ShowSite(orphan.site),
                orphan.acquirer
            )?;
        }
        if self.anonymous_holds > 0 {
            writeln!(
                f,
                "    {} anonymous hold(s) taken in untracked tokio tasks so far",
                self.anonymous_holds
            )?;
        }
        if let Some(unlisted) =
            self.permits.map(|permits| permits.unlisted()).filter(|&unlisted| unlisted > 0)
        {
            let whose = if self.lists_its_holds {
                "borrowed anonymously: nobody answers for them"
            } else {
                "anonymous, or held by owners that wait nowhere (a semaphore does not list its \
                 holders)"
            };
            writeln!(f, "    {unlisted} permit(s) held but not listed: {whose}")?;
        }
        Ok(())
    }
}

fn owner(owner: Option<OwnerId>) -> String {
    owner.map_or_else(|| "an anonymous owner".to_owned(), |owner| owner.to_string())
}

/// One step of a [`WaitCycle`]: `waiter` waits (at `wait_site`) for the primitive
/// `primitive` of the snapshot, held by `holder` (taken at `hold_site`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitStep {
    waiter: OwnerId,
    primitive: usize,
    wait_site: Site,
    holder: OwnerId,
    hold_site: Site,
}

impl WaitStep {
    /// The owner that waits.
    pub fn waiter(&self) -> OwnerId {
        self.waiter
    }
    /// The index, in [`Snapshot::primitives`], of what it waits for.
    pub fn primitive(&self) -> usize {
        self.primitive
    }
    /// Where it waits.
    pub fn wait_site(&self) -> Site {
        self.wait_site
    }
    /// The owner that holds it: the next step's waiter.
    pub fn holder(&self) -> OwnerId {
        self.holder
    }
    /// Where the holder took it.
    pub fn hold_site(&self) -> Site {
        self.hold_site
    }
}

/// A cycle of owners each waiting for a hold of the next: a *possible* deadlock. It is
/// certain only if no owner on it can release otherwise (a sibling sub-future of a
/// waiting task may still release, or the task may wait for something else as well).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitCycle {
    steps: Vec<WaitStep>,
}

impl WaitCycle {
    /// The steps, from the cycle's first owner round to it again.
    pub fn steps(&self) -> &[WaitStep] {
        &self.steps
    }
    /// The owners on the cycle.
    pub fn owners(&self) -> impl Iterator<Item = OwnerId> + '_ {
        self.steps.iter().map(|step| step.waiter)
    }
}

/// Every live primitive with its holds and waits, and the possible deadlocks among
/// their owners: see [`snapshot()`].
#[derive(Clone, Debug)]
pub struct Snapshot {
    primitives: Vec<PrimitiveSnapshot>,
    cycles: Vec<WaitCycle>,
}

impl Snapshot {
    /// Every live mutex, RwLock, semaphore and capacity limiter (idle ones too).
    pub fn primitives(&self) -> &[PrimitiveSnapshot] {
        &self.primitives
    }
    /// The possible deadlocks: one shortest wait-for cycle per group of owners that wait
    /// for each other (a strongly connected component of the wait-for graph).
    pub fn cycles(&self) -> &[WaitCycle] {
        &self.cycles
    }
    /// The waits of an owner for a hold it has itself, with their primitives.
    pub fn self_waits(&self) -> impl Iterator<Item = (&PrimitiveSnapshot, &WaitInfo)> {
        self.primitives.iter().flat_map(|primitive| {
            primitive.waits.iter().filter(|wait| wait.self_wait).map(move |wait| (primitive, wait))
        })
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let busy: Vec<_> = self.primitives.iter().filter(|primitive| !primitive.is_idle()).collect();
        writeln!(
            f,
            "ownsync: {} live primitive(s), {} held, waited for, orphaned or broken",
            self.primitives.len(),
            busy.len()
        )?;
        for primitive in busy {
            write!(f, "  {primitive}")?;
        }
        let self_waits = self.self_waits().count();
        if self_waits > 0 {
            writeln!(
                f,
                "{self_waits} self-wait(s): fine if a sibling sub-future of the owner releases, a \
                 futurelock if none will"
            )?;
        }
        let anonymous: u64 = self.primitives.iter().map(|primitive| primitive.anonymous_holds).sum();
        if anonymous > 0 {
            writeln!(
                f,
                "{anonymous} anonymous hold(s) taken in untracked tokio tasks: abandonment cannot be \
                 detected there (a leak hangs its waiters, unseen here); use track_all, \
                 ownsync::tokio::spawn or tracked"
            )?;
        }
        if self.cycles.is_empty() {
            return writeln!(f, "no wait-for cycle");
        }
        for (number, cycle) in self.cycles.iter().enumerate() {
            writeln!(f, "possible deadlock #{}: a cycle of {} owners", number + 1, cycle.steps.len())?;
            for step in &cycle.steps {
                let primitive = &self.primitives[step.primitive];
                let name = primitive.name.as_deref().map(|name| format!(" {name:?}")).unwrap_or_default();
                writeln!(
                    f,
                    "  {} waits at {} for {}{name}, held by {} (taken at {})",
                    step.waiter,
                    ShowSite(step.wait_site),
                    primitive.kind,
                    step.holder,
                    ShowSite(step.hold_site)
                )?;
            }
        }
        Ok(())
    }
}

/// Every live mutex, RwLock, semaphore and capacity limiter in the process, with its
/// holds, waits (and self-waits) and orphans, and the wait-for cycles among their owners
/// (tasks and threads) as possible deadlocks, each step with its sites. Feature
/// `diagnostics`. Takes each primitive's lock in turn (never two at once), so it is
/// safe to call from anywhere, including while holding a primitive; it is not atomic
/// across primitives, so a cycle is reported only if it was seen whole.
///
/// ```
/// let first = ownsync::Mutex::with_name((), "first");
/// let _guard = first.blocking_lock()?;
/// let snapshot = ownsync::diagnostics::snapshot();
/// let mine = snapshot.primitives().iter().find(|p| p.name() == Some("first")).unwrap();
/// assert_eq!(mine.holds()[0].owner(), Some(ownsync::current_owner()));
/// assert!(snapshot.cycles().is_empty());
/// println!("{snapshot}");
/// # Ok::<(), ownsync::AcquireError>(())
/// ```
pub fn snapshot() -> Snapshot {
    let live: Vec<Arc<dyn Diagnosed>> = {
        let registry = REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        registry.primitives.iter().filter_map(Weak::upgrade).collect()
    };
    let mut primitives: Vec<PrimitiveSnapshot> = live
        .iter()
        .map(|primitive| {
            let core = primitive.core();
            let counted = primitive.counted_holds();
            let snapshot = core.snapshot();
            let kind = core.kind();
            let counts = matches!(kind, PrimitiveKind::Semaphore | PrimitiveKind::CapacityLimiter);
            let mut holds = snapshot.holds;
            holds.extend(counted);
            PrimitiveSnapshot {
                kind,
                name: core.name_arc(),
                holds,
                waits: snapshot.waits,
                orphans: snapshot.orphans,
                broken: snapshot.broken,
                anonymous_holds: snapshot.anonymous_holds,
                cut_short: snapshot.cut_short,
                permits: counts.then(|| core.permit_counts()),
                lists_its_holds: kind == PrimitiveKind::CapacityLimiter,
                identity: Arc::as_ptr(primitive).cast::<()>() as usize,
            }
        })
        .collect();
    drop(live); // may drop the last handle of a primitive: no lock is held here
    add_counted_holds(&mut primitives);
    add_handed_over_holds(&mut primitives);
    count_listed(&mut primitives);
    let cycles = find_cycles(&primitives);
    Snapshot { primitives, cycles }
}

/// Lists the holds each waiting owner had when it queued under the primitives they are
/// of (an exclusive hold is listed already, from the primitive itself).
fn add_counted_holds(primitives: &mut [PrimitiveSnapshot]) {
    let index: HashMap<usize, usize> =
        primitives.iter().enumerate().map(|(at, primitive)| (primitive.identity, at)).collect();
    let mut found: Vec<(usize, HoldInfo)> = Vec::new();
    for primitive in primitives.iter() {
        for wait in &primitive.waits {
            for Held { identity, permits, site } in &wait.holding {
                if let Some(&at) = index.get(identity) {
                    found.push((
                        at,
                        HoldInfo { owner: wait.owner, permits: *permits, site: *site, held_for: None },
                    ));
                }
            }
        }
    }
    for (at, hold) in found {
        let holds = &mut primitives[at].holds;
        if !holds.iter().any(|known| known.owner == hold.owner && known.site == hold.site) {
            holds.push(hold);
        }
    }
}

/// Lists the holds registered to owners from another context (hand-overs), which their
/// records keep where a snapshot may read them, under the primitives they are of (a
/// limiter lists its tokens itself).
fn add_handed_over_holds(primitives: &mut [PrimitiveSnapshot]) {
    let index: HashMap<usize, usize> =
        primitives.iter().enumerate().map(|(at, primitive)| (primitive.identity, at)).collect();
    for (owner, Held { identity, permits, site }) in crate::owner::published_shared_holds() {
        let Some(primitive) = index.get(&identity).map(|&at| &mut primitives[at]) else { continue };
        let known = primitive.holds.iter().any(|hold| hold.owner == Some(owner) && hold.site == site);
        if primitive.lists_its_holds || known {
            continue;
        }
        primitive.holds.push(HoldInfo { owner: Some(owner), permits, site, held_for: None });
    }
}

/// Counts, for each counted primitive, the permits its listed holds and orphans account
/// for: the rest are shown as not listed.
fn count_listed(primitives: &mut [PrimitiveSnapshot]) {
    for primitive in primitives {
        let listed = primitive.holds.iter().map(|hold| hold.permits).sum::<usize>()
            + primitive.orphans.iter().map(|orphan| orphan.permits).sum::<usize>();
        if let Some(permits) = primitive.permits.as_mut() {
            permits.listed = listed;
        }
    }
}

/// One shortest cycle per strongly connected component of the wait-for graph.
fn find_cycles(primitives: &[PrimitiveSnapshot]) -> Vec<WaitCycle> {
    // Nodes are owners; edges waiter -> holder, labelled with the step.
    let mut nodes: Vec<OwnerId> = Vec::new();
    let mut node_of: HashMap<OwnerId, usize> = HashMap::new();
    let mut node = |owner: OwnerId, nodes: &mut Vec<OwnerId>| {
        *node_of.entry(owner).or_insert_with(|| {
            nodes.push(owner);
            nodes.len() - 1
        })
    };
    let mut edges: Vec<Vec<(usize, WaitStep)>> = Vec::new();
    for (at, primitive) in primitives.iter().enumerate() {
        for wait in &primitive.waits {
            let Some(waiter) = wait.owner else { continue };
            for hold in &primitive.holds {
                let Some(holder) = hold.owner else { continue };
                if holder == waiter {
                    continue; // a self-wait, shown as such
                }
                let (from, to) = (node(waiter, &mut nodes), node(holder, &mut nodes));
                edges.resize_with(nodes.len(), Vec::new);
                let step =
                    WaitStep { waiter, primitive: at, wait_site: wait.site, holder, hold_site: hold.site };
                edges[from].push((to, step));
            }
        }
    }
    edges.resize_with(nodes.len(), Vec::new);
    strongly_connected(&edges)
        .into_iter()
        .filter(|component| component.len() > 1)
        .filter_map(|component| shortest_cycle(&edges, &component))
        .collect()
}

/// Tarjan's strongly connected components, iteratively (no recursion depth limit).
fn strongly_connected(edges: &[Vec<(usize, WaitStep)>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let count = edges.len();
    let (mut index, mut low, mut on_stack) = (vec![UNSEEN; count], vec![0; count], vec![false; count]);
    let (mut stack, mut components, mut next) = (Vec::new(), Vec::new(), 0);
    for root in 0..count {
        if index[root] != UNSEEN {
            continue;
        }
        // (node, next edge to look at)
        let mut work = vec![(root, 0)];
        while let Some(&mut (node, ref mut edge)) = work.last_mut() {
            if *edge == 0 && index[node] == UNSEEN {
                index[node] = next;
                low[node] = next;
                next += 1;
                stack.push(node);
                on_stack[node] = true;
            }
            if let Some((to, _)) = edges[node].get(*edge) {
                *edge += 1;
                let to = *to;
                if index[to] == UNSEEN {
                    work.push((to, 0));
                } else if on_stack[to] {
                    low[node] = low[node].min(index[to]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

/// A shortest cycle through the component's smallest node, by breadth-first search
/// inside the component.
fn shortest_cycle(edges: &[Vec<(usize, WaitStep)>], component: &[usize]) -> Option<WaitCycle> {
    let start = *component.iter().min()?;
    let members: std::collections::HashSet<usize> = component.iter().copied().collect();
    let inside = |node: usize| members.contains(&node);
    // How each node was first reached: (from node, edge index).
    let mut reached: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut frontier = std::collections::VecDeque::from([start]);
    while let Some(node) = frontier.pop_front() {
        for (at, (to, _)) in edges[node].iter().enumerate() {
            if !inside(*to) || reached.contains_key(to) {
                continue;
            }
            reached.insert(*to, (node, at));
            if *to == start {
                let mut steps = Vec::new();
                let mut current = start;
                loop {
                    let (from, at) = reached[&current];
                    steps.push(edges[from][at].1.clone());
                    current = from;
                    if current == start {
                        break;
                    }
                }
                steps.reverse();
                return Some(WaitCycle { steps });
            }
            frontier.push_back(*to);
        }
    }
    None
}
