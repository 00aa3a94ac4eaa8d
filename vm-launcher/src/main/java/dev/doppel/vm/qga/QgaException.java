package dev.doppel.vm.qga;

import java.io.IOException;

/**
 * A failure talking to a VM's QEMU guest agent, naming the VM, the command (or phase: connect,
 * sync) and what the agent or the link said.
 */
public class QgaException extends IOException {
    private final String vm;
    private final String command;

    public QgaException(String vm, String command, String message, Throwable cause) {
        super("VM '" + vm + "': guest agent " + command + ": " + message, cause);
        this.vm = vm;
        this.command = command;
    }

    public QgaException(String vm, String command, String message) {
        this(vm, command, message, null);
    }

    public String vm() {
        return vm;
    }

    /** The command that failed, or the phase ({@code connect}, {@code guest-sync-delimited}). */
    public String command() {
        return command;
    }

    /** The agent answered in time but with {@code {"error": …}}. */
    public static final class CommandError extends QgaException {
        private final String errorClass;

        public CommandError(String vm, String command, String errorClass, String desc) {
            super(vm, command, errorClass + ": " + desc);
            this.errorClass = errorClass;
        }

        public String errorClass() {
            return errorClass;
        }
    }

    /** No answer before the deadline (the agent is not running yet, or the guest is stopped). */
    public static final class Timeout extends QgaException {
        public Timeout(String vm, String command, long millis) {
            super(vm, command, "no answer within " + millis + " ms");
        }
    }
}
