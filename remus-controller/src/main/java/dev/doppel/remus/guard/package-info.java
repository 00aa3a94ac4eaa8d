/**
 * The per-VM guard: a small process on the primary host that holds the VM's lease and the life of
 * its QEMU, so that the controller (the {@code protect} command, later the host daemon) can crash or
 * be restarted without fencing the guest or letting the backup take over.
 *
 * <ul>
 *   <li>{@link VmGuard} — the guard itself (lease, self-fencing, dead man, QEMU watcher, socket);</li>
 *   <li>{@link GuardMain} — its process entry point;</li>
 *   <li>{@link GuardProcess} — starts a guard, or finds the one already running for a VM;</li>
 *   <li>{@link GuardClient} — the controller's side, a {@link dev.doppel.remus.fencing.PrimaryFence};</li>
 *   <li>{@link DeadMan} — the child process that kills the QEMU when the guard dies, however it dies.</li>
 * </ul>
 * See {@code docs/fencing.md}, "The guard".
 */
package dev.doppel.remus.guard;
