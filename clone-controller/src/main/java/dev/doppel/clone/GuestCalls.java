package dev.doppel.clone;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The guest's side of VM fork, as a process calls fork(): {@code vmfork N}, {@code vmwait},
 * {@code vmexit CODE}, {@code vmkill ID} arrive through the guest agent as calls and are answered
 * on the agent link of the VM's <em>current</em> process.
 *
 * <p>A fork call is answered after the fork in every VM that continues from the snapshot: the
 * guest program that called {@code vmfork} is blocked inside the snapshot, so it wakes up in the
 * parent with 0 and in clone k with k, each clone already carrying its own identity.
 */
final class GuestCalls {
    private static final Logger log = LoggerFactory.getLogger(GuestCalls.class);
    private static final Duration WAIT_LIMIT = Duration.ofHours(24);

    /** What a guest's {@code vmfork N} does: a local fork, or a remote one when the controller places forks on hosts. */
    interface Forker {
        ForkResult fork(ForkableVm vm, int n);
    }

    private final Forker forks;
    private final ForkableVm vm;
    private final ExecutorService executor;

    GuestCalls(Forker forks, ForkableVm vm, ExecutorService executor) {
        this.forks = forks;
        this.vm = vm;
        this.executor = executor;
    }

    /** Called on the agent's reader thread: never block it, the fork replaces that very link. */
    void handle(JsonNode call) {
        executor.execute(() -> dispatch(call));
    }

    private void dispatch(JsonNode call) {
        long id = call.path("id").asLong(-1);
        String name = call.path("call").asText();
        log.info("vm={} event=guest-call call={} id={}", vm.name(), name, id);
        try {
            switch (name) {
                case "fork" -> fork(id, call.path("n").asInt(0));
                case "wait" -> answer(vm, id, vm.waitChildren(WAIT_LIMIT));
                case "exit" -> exit(id, call.path("code").asInt(0));
                case "kill" -> kill(id, call.path("target").asInt(-1));
                default -> fail(vm, id, "unknown call '" + name + "'");
            }
        } catch (Exception e) {
            log.warn("vm={} event=guest-call-failed call={} cause=\"{}\"", vm.name(), name, e.getMessage());
            fail(vm, id, e.getMessage());
        }
    }

    private void fork(long id, int n) {
        ForkResult result = forks.fork(vm, n);
        for (ForkableVm clone : result.clones()) {
            clone.routeGuestCallsQuietly(new GuestCalls(forks, clone, executor));
            // The clone's vmfork returns only once the clone has its own addresses.
            clone.identity().whenComplete((ok, err) -> {
                if (err == null) {
                    answer(clone, id, clone.cloneId());
                } else {
                    fail(clone, id, "clone identity not applied: " + err.getMessage());
                }
            });
        }
        answer(vm, id, 0);
    }

    private void exit(long id, int code) {
        answer(vm, id, Map.of("exiting", code));
        vm.exit(code);
    }

    private void kill(long id, int cloneId) {
        for (ForkableVm c : vm.children()) {
            if (c.cloneId() == cloneId && c.isRunning()) {
                c.kill();
                answer(vm, id, Map.of("killed", cloneId));
                return;
            }
        }
        fail(vm, id, "no running clone with id " + cloneId);
    }

    private static void answer(ForkableVm target, long id, Object result) {
        try {
            target.agent().answerCall(id, result);
        } catch (IOException | RuntimeException e) {
            log.warn("vm={} event=answer-failed id={} cause=\"{}\"", target.name(), id, e.getMessage());
        }
    }

    private static void fail(ForkableVm target, long id, String error) {
        try {
            target.agent().failCall(id, error);
        } catch (IOException | RuntimeException e) {
            log.warn("vm={} event=answer-failed id={} cause=\"{}\"", target.name(), id, e.getMessage());
        }
    }
}
