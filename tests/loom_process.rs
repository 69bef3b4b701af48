//! Loom models of `ProcessSemaphore`'s announce/complete protocol (`src/process/protocol.rs`).
//!
//! A process is a thread; a process killed by `SIGKILL` is a thread that stops between two steps
//! of an operation (each step is one atomic operation on the shared words, or a CAS loop whose
//! iterations leave nothing half-done). A recoverer is another thread that runs once the killed
//! one has stopped (it learnt of the death from the kernel), possibly while other live processes
//! keep going. Every model checks conservation: once everyone is done, the permits in the state
//! word are exactly the initial ones (none lost, none made), and no slot still counts any.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --target-dir target/loom --test loom_process`.
//! `docs/process.md` lists the mutation of the protocol each model was checked against.
#![cfg(loom)]

use futex_semaphore::process_protocol::owners::{self, RECOVERING};
use futex_semaphore::process_protocol::parking::{ONE_MANY_SLEEPER, Parking, REGISTER, UNREGISTER, unit};
use futex_semaphore::process_protocol::{
    Announced, GIVE, LANES, Lane, Lanes, Refused, SHARED_LANES, State, TAG_SEQ_BITS, TAKE, held_total,
};
use loom::sync::Arc;
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// For each of 0 to 4 steps: a world of `permits` permits and `setup` done, a process killed after
/// that many steps of `dead` (slot 0), racing a live process doing `live`; then slot 0's
/// recoverer, still racing it. Afterwards, conservation.
fn killed_at_each_step(permits: u64, setup: fn(&World), dead: fn(&World, usize) -> bool, live: fn(&World)) {
    killed_at_each_step_leaving(permits, move |_| permits, setup, dead, live);
}

/// [`killed_at_each_step`], where `left(steps)` permits must be there at the end (fewer than
/// `permits` if some were forgotten).
fn killed_at_each_step_leaving(
    permits: u64,
    left: impl Fn(usize) -> u64 + Copy + Send + Sync + 'static,
    setup: fn(&World),
    dead: fn(&World, usize) -> bool,
    live: fn(&World),
) {
    for steps in 0..=4 {
        model(move || {
            let world = World::new(permits);
            setup(&world);
            let dead = {
                let world = world.clone();
                thread::spawn(move || {
                    dead(&world, steps);
                })
            };
            let live = {
                let world = world.clone();
                thread::spawn(move || live(&world))
            };
            dead.join().unwrap();
            world.recover();
            live.join().unwrap();
            world.assert_conserved(left(steps));
        });
    }
}

/// The first owned lane of a slot.
const OWNED: u32 = SHARED_LANES as u32;

/// Holder slots (0: the process that gets killed, 1 and 2: live ones), each with its lanes and
/// its sleep lane, the state word and the region's sleep words.
struct World {
    state: State,
    slots: [[Lane; LANES]; SLOTS],
    sleeping: [Lane; SLOTS],
    parking: Parking,
}

const SLOTS: usize = 3;

impl Lanes for World {
    fn lane(&self, slot: u32, lane: u32) -> Option<&Lane> {
        self.slots.get(slot as usize)?.get(lane as usize)
    }
}

impl World {
    fn new(permits: u64) -> Arc<World> {
        Arc::new(World {
            state: State::new(permits),
            slots: std::array::from_fn(|_| std::array::from_fn(|_| Lane::new())),
            sleeping: std::array::from_fn(|_| Lane::new()),
            parking: Parking::new(),
        })
    }

    /// Steps of one operation in lane 0 of `slot`, stopping after `steps` of them (5 or more:
    /// the whole operation): 1 announce, 2 publish, 3 complete, 4 finish. Whether it took or
    /// gave its permits (so far as the state word goes).
    fn op(&self, slot: u32, op: u64, n: u32, steps: usize) -> bool {
        self.op_in(slot, 0, op, n, steps)
    }

    /// [`op`](World::op) in lane `index`: a shared lane reserved by a CAS, or an owned one
    /// (`index >= SHARED_LANES`) announced by a plain store.
    fn op_in(&self, slot: u32, index: u32, op: u64, n: u32, steps: usize) -> bool {
        let lane = &self.slots[slot as usize][index as usize];
        if steps == 0 {
            return false;
        }
        let announced = self.announce_in(slot, index, op, n);
        if steps == 1 {
            return false;
        }
        match self.state.publish(self, &announced) {
            Ok(_) => {
                if steps >= 3 {
                    announced.complete(lane);
                }
                if steps >= 4 {
                    announced.finish(lane);
                }
                true
            }
            Err(Refused::NoPermits | Refused::Closed) => {
                announced.withdraw(lane);
                false
            }
        }
    }

    /// Step 1 in lane `index` of `slot`: by a CAS in a shared lane, by a plain store in an owned
    /// one.
    fn announce_in(&self, slot: u32, index: u32, op: u64, n: u32) -> Announced {
        let lane = &self.slots[slot as usize][index as usize];
        if index as usize >= SHARED_LANES {
            lane.announce_owned(slot, index, op, n)
        } else {
            lane.announce(slot, index, op, n).expect("the lane is this thread's")
        }
    }

    /// Steps of a `forget` of `n` in lane `index` of `slot`, as `ProcessPermit::forget` makes
    /// it, stopping after `steps` of them: 1 announce a give-back, 2 publish it with the permits
    /// unchanged, 3 complete, 4 finish.
    fn forget_in(&self, slot: u32, index: u32, n: u32, steps: usize) {
        let lane = &self.slots[slot as usize][index as usize];
        if steps == 0 {
            return;
        }
        let announced = self.announce_in(slot, index, GIVE, n);
        if steps == 1 {
            return;
        }
        self.state.publish_unchanged(self, &announced);
        if steps >= 3 {
            announced.complete(lane);
        }
        if steps >= 4 {
            announced.finish(lane);
        }
    }

    /// The live process: takes one permit (which may fail) and gives it back.
    fn live(&self) {
        if self.op(1, TAKE, 1, usize::MAX) {
            self.op(1, GIVE, 1, usize::MAX);
        }
    }

    /// The recoverer of slot 0 (its owner has stopped).
    fn recover(&self) -> u64 {
        self.state.recover_lanes(self, 0, &self.slots[0])
    }

    /// A take of `n` in lane 0 of `slot`, all steps: `Err` if refused.
    fn try_take(&self, slot: u32, n: u32) -> Result<(), Refused> {
        let lane = &self.slots[slot as usize][0];
        let announced = lane.announce(slot, 0, TAKE, n).expect("lane 0 is this thread's");
        match self.state.publish(self, &announced) {
            Ok(_) => {
                announced.complete(lane);
                announced.finish(lane);
                Ok(())
            }
            Err(refused) => {
                announced.withdraw(lane);
                Err(refused)
            }
        }
    }

    /// A blocking acquire of `n` by `slot`, as `ProcessSemaphore::acquire_slow` does it (without
    /// spinning and untimed, so that a lost wakeup is a deadlock loom reports).
    fn acquire(&self, slot: u32, n: u32) {
        while self.try_take(slot, n).is_err() {
            let me = Some((slot, &self.sleeping[slot as usize]));
            if self
                .parking
                .round(&self.state, &self.sleeping[..], me, unit(n), None, || self.try_take(slot, n))
                .is_ok()
            {
                return;
            }
        }
    }

    /// Gives back `n` held by `slot`, then wakes if the word its give-back replaced had
    /// `SLEEPING`, as dropping a `ProcessPermit` does.
    fn release(&self, slot: u32, n: u32) {
        let lane = &self.slots[slot as usize][0];
        let announced = lane.announce(slot, 0, GIVE, n).expect("lane 0 is this thread's");
        let old = self.state.publish(self, &announced).expect("a give-back within MAX_PERMITS");
        announced.complete(lane);
        announced.finish(lane);
        self.parking.wake_after(&self.state, old, u64::from(n));
    }

    fn assert_conserved(&self, permits: u64) {
        use loom::sync::atomic::Ordering::SeqCst;
        let words = |slot: usize| {
            let lane = |i: usize| {
                let lane = &self.slots[slot][i];
                format!("[{i}] announce {:#x} held {:#x}", lane.announce.load(SeqCst), lane.held.load(SeqCst))
            };
            format!("{} {}", lane(0), lane(SHARED_LANES))
        };
        let dump = format!(
            "state {:#x}; slot 0: {}; slot 1: {}; slot 2: {}",
            self.state.word(),
            words(0),
            words(1),
            words(2)
        );
        for slot in 0..SLOTS {
            assert_eq!(held_total(&self.slots[slot]), 0, "slot {slot} still counts permits: {dump}");
        }
        assert_eq!(self.state.available(), permits, "permits lost or made");
    }

    /// What `sleepers` and the slots' sleep lanes count once everyone is done.
    fn sleepers_left(&self) -> (u64, u32) {
        (State::count_of(self.parking.sleepers.word()), held_total(&self.sleeping))
    }

    /// Steps of a registration (`add`) or unregistration of `unit` by `slot`, stopping after
    /// `steps` of them (4: the whole of it): 1 announce, 2 publish, 3 complete, 4 finish.
    fn sleep_op(&self, slot: u32, unit: u32, add: bool, steps: usize) {
        let lane = &self.sleeping[slot as usize];
        if steps == 0 {
            return;
        }
        let op = lane
            .announce(slot, 0, if add { REGISTER } else { UNREGISTER }, unit)
            .expect("the sleep lane is free");
        if steps == 1 {
            return;
        }
        self.parking.publish(&self.sleeping[..], &op, unit, add).expect("no count is full");
        if steps >= 3 {
            op.complete(lane);
        }
        if steps >= 4 {
            op.finish(lane);
        }
    }

    /// The recoverer of slot 0's sleeper registrations.
    fn take_off_dead(&self) {
        self.parking.take_off_dead(&self.sleeping[..], 0, &self.sleeping[0]);
    }
}

/// A process killed at each step of a take, while another takes and gives back: the recoverer,
/// racing the live one, gives back exactly what the dead one took.
#[test]
fn a_take_killed_at_any_step_is_settled_exactly() {
    killed_at_each_step(1, |_| {}, |world, steps| world.op(0, TAKE, 1, steps), World::live);
}

/// A process that holds a permit killed at each step of giving it back, while another takes
/// and gives back: the permit comes back exactly once.
#[test]
fn a_give_back_killed_at_any_step_is_settled_exactly() {
    killed_at_each_step(
        2,
        |world| assert!(world.op(0, TAKE, 1, usize::MAX)),
        |world, steps| world.op(0, GIVE, 1, steps),
        World::live,
    );
}

/// A recoverer killed at each step of giving a dead holder's permit back; a second recoverer
/// settles what it left, while a live process takes and gives back.
#[test]
fn a_recoverer_killed_at_any_step_is_settled_by_the_next() {
    // The holder is dead; the first recoverer settled its lanes (nothing pending), and gives the
    // total back in lane 0, killed after `steps` steps.
    killed_at_each_step(
        1,
        |world| assert!(world.op(0, TAKE, 1, usize::MAX)),
        |world, steps| world.op(0, GIVE, held_total(&world.slots[0]), steps),
        World::live,
    );
}

/// A take killed at each step while an untracked process (no slot: a full table) takes and gives
/// back untagged, as `release` and `add_permits` also change the state word: an untagged change
/// must complete the tagged operation it overwrites, or the recoverer drops a take that happened
/// (a permit lost, with the state word's last change untagged).
#[test]
fn an_untagged_change_completes_the_tag_it_overwrites() {
    killed_at_each_step(
        2,
        |_| {},
        |world, steps| world.op(0, TAKE, 1, steps),
        |world| {
            if world.state.take_untagged(world, 1).is_ok() {
                assert!(world.state.add_untagged(world, 1).is_some());
            }
        },
    );
}

/// Two live processes contending, with no kill: never more taken than exists (a take that
/// succeeds while the other holds the only permit fails the model), and all comes back.
#[test]
fn two_live_processes_never_hold_more_than_exists() {
    model(|| {
        let world = World::new(1);
        let inside = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..2u32)
            .map(|slot| {
                let (world, inside) = (world.clone(), inside.clone());
                thread::spawn(move || {
                    use loom::sync::atomic::Ordering::SeqCst;
                    if world.op(slot, TAKE, 1, usize::MAX) {
                        assert_eq!(inside.fetch_add(1, SeqCst), 0, "two holders of one permit");
                        inside.fetch_sub(1, SeqCst);
                        world.op(slot, GIVE, 1, usize::MAX);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        world.assert_conserved(1);
    });
}

// ---------------------------------------------------------------------------------------------
// Owned lanes (`src/process/lease.rs`): announced by a plain store, one thread's only.

/// A take in an owned lane killed at each step, while a live process takes and gives back in an
/// owned lane of its own: the plain-store announcement is seen by whoever reads the tag (the
/// live one helping, the recoverer), so the take is settled exactly.
#[test]
fn a_take_in_an_owned_lane_killed_at_any_step_is_settled_exactly() {
    killed_at_each_step(
        1,
        |_| {},
        |world, steps| world.op_in(0, OWNED, TAKE, 1, steps),
        |world| {
            if world.op_in(1, OWNED, TAKE, 1, usize::MAX) {
                world.op_in(1, OWNED, GIVE, 1, usize::MAX);
            }
        },
    );
}

/// A give-back in an owned lane killed at each step, after a take in a shared lane of the same
/// process (a permit taken in one lane is given back through another), while a live process
/// takes and gives back: the permit comes back exactly once.
#[test]
fn a_give_back_in_an_owned_lane_killed_at_any_step_is_settled_exactly() {
    killed_at_each_step(
        2,
        |world| assert!(world.op(0, TAKE, 1, usize::MAX)),
        |world, steps| world.op_in(0, OWNED, GIVE, 1, steps),
        World::live,
    );
}

/// Two threads of one process, one in its owned lane and one in a shared lane of the same slot,
/// each taking and giving back (helping each other's tags): never more held than exists, and
/// every lane settles to nothing held.
#[test]
fn threads_in_an_owned_and_a_shared_lane_of_one_slot_conserve_permits() {
    model(move || {
        let world = World::new(1);
        let inside = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = [0, OWNED]
            .into_iter()
            .map(|index| {
                let (world, inside) = (world.clone(), inside.clone());
                thread::spawn(move || {
                    use loom::sync::atomic::Ordering::SeqCst;
                    if world.op_in(1, index, TAKE, 1, usize::MAX) {
                        assert_eq!(inside.fetch_add(1, SeqCst), 0, "two holders of one permit");
                        inside.fetch_sub(1, SeqCst);
                        world.op_in(1, index, GIVE, 1, usize::MAX);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        world.assert_conserved(1);
    });
}

/// A process of two threads, each in an owned lane of its slot, killed (both stop) while one
/// thread's take is at each step and the other's take runs whole, overwriting the first one's
/// tag: the first is helped (or dropped, if unpublished), and both permits come back exactly.
/// `publish_from` skips helping only a tag of the caller's own lane (invariant 4), never one of
/// another lane of its slot.
#[test]
fn a_process_of_two_threads_killed_at_any_step_is_settled_exactly() {
    for steps in 0..=4 {
        model(move || {
            let world = World::new(2);
            let threads: Vec<_> = [(OWNED, steps), (OWNED + 1, usize::MAX)]
                .into_iter()
                .map(|(index, steps)| {
                    let world = world.clone();
                    thread::spawn(move || {
                        world.op_in(0, index, TAKE, 1, steps);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            world.recover();
            world.assert_conserved(2);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// `forget`: a lane's operation that moves its count but not the permits.

/// Forgets in a row that bring a lane's next operation round to the tag bits of its last
/// published one (3 with the loom build's 2-bit tag sequence; 16,383 in a region).
const FORGETS: u32 = (1 << TAG_SEQ_BITS) - 1;

/// A process takes `FORGETS + 1` permits in one operation (published: the tag names it), forgets
/// `FORGETS` of them one at a time, then takes one more, killed at each step, while a live
/// process takes and gives back (helping the tag it overwrites); then the recoverer. Only the
/// permit kept (and the one taken, if published) come back. A forget that completed unpublished
/// left the tag behind its lane, so the last take's announcement carried the tag's bits: the
/// recoverer (`resolve`) or the live helper (`help_slow`) completed it unpublished (a permit made).
#[test]
fn a_take_after_many_forgets_killed_at_any_step_is_settled_exactly() {
    killed_at_each_step_leaving(
        u64::from(FORGETS) + 2,
        |_| 2,
        |world| {
            assert!(world.op_in(0, OWNED, TAKE, FORGETS + 1, usize::MAX));
            for _ in 0..FORGETS {
                world.forget_in(0, OWNED, 1, usize::MAX);
            }
        },
        |world, steps| world.op_in(0, OWNED, TAKE, 1, steps),
        World::live,
    );
}

/// A forget killed at each step, while a live process takes and gives back: published (2 steps
/// or more), it happened (the recoverer completes it: the permit is gone for good); not
/// published, it did not (the permit comes back with the slot).
#[test]
fn a_forget_killed_at_any_step_is_settled_exactly() {
    killed_at_each_step_leaving(
        2,
        |steps| if steps >= 2 { 1 } else { 2 },
        |world| assert!(world.op_in(0, OWNED, TAKE, 1, usize::MAX)),
        |world, steps| {
            world.forget_in(0, OWNED, 1, steps);
            false
        },
        World::live,
    );
}

// ---------------------------------------------------------------------------------------------
// The holder table's `owner` and `nonce` words (`src/process/owners.rs`).

/// One slot's words, and who is alive: the dead holder P1 and P2, a process with P1's pid and
/// start time (so P1's identity), born during the model. The kernel's answer to "is P1 dead?" is
/// "no process has that identity": true until P2 is born.
struct Table {
    owner: loom::sync::atomic::AtomicU64,
    nonce: loom::sync::atomic::AtomicU64,
    born: loom::sync::atomic::AtomicBool,
    claimed: loom::sync::atomic::AtomicBool,
}

/// P1's (and P2's) identity, their nonces, and two recoverers'.
const P1: u64 = 41 | 7 << 32;
const N1: u64 = 0xA1;
const N2: u64 = 0xA2;
const R: u64 = 51;
const R2: u64 = 52;

impl Table {
    fn is_dead(&self) -> bool {
        !self.born.load(loom::sync::atomic::Ordering::SeqCst)
    }

    /// A recoverer `me`'s look, liveness check and take-over, as `recover_slot` makes them.
    fn take_over(&self, me: u64) -> bool {
        let seen = owners::look(&self.owner, &self.nonce);
        seen.subject() == P1
            && seen.owner & RECOVERING == 0
            && self.is_dead()
            && owners::take_over(&self.owner, &self.nonce, seen, me, || self.is_dead())
    }
}

/// A recoverer R judges the dead P1's slot while another recoverer R2 recovers and frees it,
/// after which P2 (P1's pid, started in the same clock tick) is born and claims it: R's CAS,
/// from P1's owner word, also succeeds on P2's. R must give the slot back then (a live process's
/// slot recovered: its permits given back while it holds them, the slot freed under it); and the
/// owner word never stays R's unless R took the slot over from a dead owner.
#[test]
fn a_recoverer_never_takes_over_a_slot_claimed_again_by_the_same_identity() {
    model(|| {
        use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
        let table = Arc::new(Table {
            owner: AtomicU64::new(P1),
            nonce: AtomicU64::new(N1),
            born: AtomicBool::new(false),
            claimed: AtomicBool::new(false),
        });
        // R and P2 in threads of their own, R2 in the model's: loom then finds the interleavings
        // where R2 frees the slot between R's two reads (it did not with R in the main thread),
        // and P2's claim is ordered after R2's free only by the words themselves.
        let recoverer = {
            let table = table.clone();
            thread::spawn(move || table.take_over(R))
        };
        let p2 = {
            let table = table.clone();
            thread::spawn(move || {
                // P2 is born (the kernel knows it before it runs), then claims the slot if free.
                table.born.store(true, SeqCst);
                if owners::claim(&table.owner, &table.nonce, P1, N2) {
                    table.claimed.store(true, SeqCst);
                }
            })
        };
        if table.take_over(R2) {
            owners::free(&table.owner, &table.nonce);
        }
        p2.join().unwrap();
        let took = recoverer.join().unwrap();
        let (owner, claimed) = (table.owner.load(SeqCst), table.claimed.load(SeqCst));
        assert!(!(took && claimed), "R took over the slot of the live P2");
        if !took {
            assert_ne!(owner, R | RECOVERING, "R left the slot marked as its own");
        }
    });
}

/// After an `exec`, the new image of P1 (same pid and start time, nonce N2) recovers the slot its
/// earlier image (nonce N1) claimed, as `recover_slot` judges it: its own identity, another
/// nonce, not under recovery (`holders.rs`, `is_earlier_image`); `/proc` is not asked, it says
/// P1 lives. Two of its threads recover at once (a claim's and a `recover()`'s), and a third
/// claims the slot again once freed: the earlier image's slot is taken over exactly once, and
/// never once claimed again by this image.
#[test]
fn an_image_after_exec_takes_over_its_earlier_images_slot_once() {
    model(|| {
        use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
        let table = Arc::new(Table {
            owner: AtomicU64::new(P1),
            nonce: AtomicU64::new(N1),
            born: AtomicBool::new(true),
            claimed: AtomicBool::new(false),
        });
        let took = Arc::new(AtomicUsize::new(0));
        let recover = |table: &Table, took: &AtomicUsize| {
            let seen = owners::look(&table.owner, &table.nonce);
            let earlier_image = seen.owner == P1 && seen.nonce != 0 && seen.nonce != N2;
            if earlier_image && owners::take_over(&table.owner, &table.nonce, seen, P1, || unreachable!()) {
                took.fetch_add(1, SeqCst);
                owners::free(&table.owner, &table.nonce);
            }
        };
        let other = {
            let (table, took) = (table.clone(), took.clone());
            thread::spawn(move || recover(&table, &took))
        };
        let claimer = {
            let table = table.clone();
            thread::spawn(move || {
                if owners::claim(&table.owner, &table.nonce, P1, N2) {
                    table.claimed.store(true, SeqCst);
                }
            })
        };
        recover(&table, &took);
        other.join().unwrap();
        claimer.join().unwrap();
        let (owner, nonce) = (table.owner.load(SeqCst), table.nonce.load(SeqCst));
        assert_eq!(took.load(SeqCst), 1, "the earlier image's slot taken over exactly once");
        if table.claimed.load(SeqCst) {
            assert_eq!((owner, nonce), (P1, N2), "the claim by this image stands");
        } else {
            assert_eq!(owner, 0, "freed");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The sleep protocol across processes (`src/process/protocol/parking.rs` via `Parking`).

/// A sleeper and a releaser: the sleeper registers, tries, sleeps; the releaser gives its
/// permit back and wakes. A lost wakeup leaves the sleeper blocked: loom reports a deadlock.
#[test]
fn a_sleeper_is_woken_by_the_release_it_waits_for() {
    model(|| {
        let world = World::new(1);
        assert!(world.op(1, TAKE, 1, usize::MAX));
        let sleeper = {
            let world = world.clone();
            thread::spawn(move || {
                world.acquire(0, 1);
                world.release(0, 1);
            })
        };
        world.release(1, 1);
        sleeper.join().unwrap();
        world.assert_conserved(1);
        assert_eq!(world.sleepers_left(), (0, 0), "a sleeper is still counted");
    });
}

/// A stale `SLEEPING` flag (its sleeper has left) met by a release while a new sleeper
/// registers: the release clears the flag, looks at `sleepers` again, and the new sleeper is
/// woken (a deadlock otherwise), whichever of its mark and the clear comes first.
#[test]
fn a_release_clearing_a_stale_sleeping_flag_never_strands_a_new_sleeper() {
    model(|| {
        let world = World::new(1);
        assert!(world.op(2, TAKE, 1, usize::MAX));
        world.state.mark_sleeping();
        let sleeper = {
            let world = world.clone();
            thread::spawn(move || {
                world.acquire(1, 1);
                world.release(1, 1);
            })
        };
        world.release(2, 1);
        sleeper.join().unwrap();
        world.assert_conserved(1);
        assert_eq!(world.sleepers_left(), (0, 0));
    });
}

/// A sleeper for two permits and two releases of one, the flag stale at first: whichever release
/// comes second wakes the sleeper, whether it found the flag stale (and cleared it, then looked
/// again) or the sleeper's fresh mark.
#[test]
fn two_releases_around_a_cleared_flag_wake_a_sleeper_for_both() {
    model(|| {
        let world = World::new(2);
        assert!(world.op(0, TAKE, 1, usize::MAX));
        assert!(world.op(2, TAKE, 1, usize::MAX));
        world.state.mark_sleeping();
        let sleepers: Vec<_> = [1u32]
            .into_iter()
            .map(|slot| {
                let world = world.clone();
                thread::spawn(move || {
                    world.acquire(slot, 2);
                    world.release(slot, 2);
                })
            })
            .collect();
        let holder = {
            let world = world.clone();
            thread::spawn(move || world.release(0, 1))
        };
        world.release(2, 1);
        holder.join().unwrap();
        for s in sleepers {
            s.join().unwrap();
        }
        world.assert_conserved(2);
        assert_eq!(world.sleepers_left(), (0, 0));
    });
}

/// A sleeper for two permits killed at each step of registering, and (registered) at each step
/// of unregistering; its recoverer takes its registrations off while a live sleeper waits for a
/// live holder's release (made after the recovery, racing the sleeper). The live sleeper is always woken (recovery never takes a live
/// registration off: a deadlock otherwise), and afterwards nothing is counted: not in
/// `sleepers`, not in any slot (layout 2 left one registration counted for a kill between its two
/// adds).
#[test]
fn a_sleeper_killed_at_any_step_of_registering_is_taken_off_exactly() {
    for (registered, steps) in (0..=4).map(|s| (false, s)).chain((0..=3).map(|s| (true, s))) {
        model(move || {
            let world = World::new(1);
            assert!(world.op(2, TAKE, 1, usize::MAX));
            if registered {
                world.sleep_op(0, ONE_MANY_SLEEPER, true, 4);
            }
            let dead = {
                let world = world.clone();
                thread::spawn(move || world.sleep_op(0, ONE_MANY_SLEEPER, !registered, steps))
            };
            let sleeper = {
                let world = world.clone();
                thread::spawn(move || {
                    world.acquire(1, 1);
                    world.release(1, 1);
                })
            };
            dead.join().unwrap();
            // The recoverer, then (in the same thread, racing the sleeper) the live holder.
            world.take_off_dead();
            world.release(2, 1);
            sleeper.join().unwrap();
            world.assert_conserved(1);
            assert_eq!(world.sleepers_left(), (0, 0), "registered {registered}, killed after {steps} steps");
        });
    }
}

/// A recoverer killed at each step of taking a dead sleeper's registration off `sleepers`; a
/// second recoverer settles what it left, while a live process registers, sleeps and is woken.
#[test]
fn a_recoverer_killed_taking_a_sleeper_off_is_settled_by_the_next() {
    for steps in 0..=3 {
        model(move || {
            let world = World::new(0);
            world.sleep_op(0, ONE_MANY_SLEEPER, true, 4);
            let first = {
                let world = world.clone();
                thread::spawn(move || {
                    // What `take_off_dead` does: the lane is settled (nothing pending), then its
                    // total is taken off as an announced operation, killed after `steps` steps.
                    let dead = world.sleeping[0].held();
                    world.sleep_op(0, dead, false, steps);
                })
            };
            let sleeper = {
                let world = world.clone();
                thread::spawn(move || {
                    world.acquire(1, 1);
                    world.release(1, 1);
                })
            };
            first.join().unwrap();
            world.take_off_dead();
            // What `add_permits` does: the replaced word says whether to wake.
            let old = world.state.add_untagged(&*world, 1).expect("below MAX_PERMITS");
            world.parking.wake_after(&world.state, old, 1);
            sleeper.join().unwrap();
            world.assert_conserved(1);
            assert_eq!(world.sleepers_left(), (0, 0), "first recoverer killed after {steps} steps");
        });
    }
}

/// Recovery racing a release: a dead holder's permit given back by a recoverer (who then wakes,
/// as `recover` does) and a live holder's release, while a sleeper waits for both permits. The
/// sleeper must be woken by whichever comes second, and every permit is conserved.
#[test]
fn recovery_racing_a_release_wakes_a_sleeper_for_both() {
    model(|| {
        let world = World::new(2);
        assert!(world.op(0, TAKE, 1, usize::MAX));
        assert!(world.op(1, TAKE, 1, usize::MAX));
        let sleeper = {
            let world = world.clone();
            thread::spawn(move || {
                world.acquire(2, 2);
                world.release(2, 2);
            })
        };
        let holder = {
            let world = world.clone();
            thread::spawn(move || world.release(1, 1))
        };
        // Slot 0's process is dead: recover it.
        let returned = world.recover();
        if returned > 0 {
            world.parking.wake(&world.state, returned);
        }
        holder.join().unwrap();
        sleeper.join().unwrap();
        assert_eq!(returned, 1);
        world.assert_conserved(2);
        assert_eq!(world.sleepers_left(), (0, 0));
    });
}
