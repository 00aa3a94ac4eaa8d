package dev.doppel.qmp;

import java.time.Duration;
import java.util.Objects;

/**
 * Client settings. Use {@link #defaults(String)} or {@link #builder(String)}; {@code with*} methods give
 * modified copies.
 *
 * @param vmName                names the VM in thread names, log lines and every exception message
 * @param defaultTimeout        per-command timeout for {@code execute} without an explicit timeout (30 s)
 * @param greetingTimeout       how long {@code connect} waits for the greeting (10 s)
 * @param maxMessageBytes       longest accepted incoming message; longer kills the connection (10 MiB)
 * @param enableOob             request the {@code oob} capability when offered (true)
 * @param validateAgainstSchema validate commands before sending once {@link QmpClient#schema()} is loaded (false)
 * @param eventBacklogSize      how many recent events {@link QmpClient#recentEvents()} keeps (1000)
 * @param replySpin             how long a blocking call polls for (and reads) its reply before parking (500 µs; 0 = park at once)
 */
public record QmpClientOptions(String vmName, Duration defaultTimeout, Duration greetingTimeout, int maxMessageBytes,
                               boolean enableOob, boolean validateAgainstSchema, int eventBacklogSize,
                               Duration replySpin) {

    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);
    public static final Duration DEFAULT_GREETING_TIMEOUT = Duration.ofSeconds(10);
    public static final int DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024;
    public static final int DEFAULT_EVENT_BACKLOG = 1000;
    public static final Duration DEFAULT_REPLY_SPIN = Duration.ofNanos(500_000);

    public QmpClientOptions {
        Objects.requireNonNull(vmName, "vmName");
        Objects.requireNonNull(defaultTimeout, "defaultTimeout");
        Objects.requireNonNull(greetingTimeout, "greetingTimeout");
        if (defaultTimeout.isNegative() || defaultTimeout.isZero() || greetingTimeout.isNegative() || greetingTimeout.isZero()) {
            throw new IllegalArgumentException("timeouts must be positive");
        }
        if (maxMessageBytes < 1024) {
            throw new IllegalArgumentException("maxMessageBytes must be at least 1024: " + maxMessageBytes);
        }
        Objects.requireNonNull(replySpin, "replySpin");
        if (eventBacklogSize < 0) {
            throw new IllegalArgumentException("eventBacklogSize must be >= 0");
        }
    }

    /** All defaults for the given VM name. */
    public static QmpClientOptions defaults(String vmName) {
        return new QmpClientOptions(vmName, DEFAULT_TIMEOUT, DEFAULT_GREETING_TIMEOUT, DEFAULT_MAX_MESSAGE_BYTES,
                true, false, DEFAULT_EVENT_BACKLOG, DEFAULT_REPLY_SPIN);
    }

    public static Builder builder(String vmName) {
        return new Builder(defaults(vmName));
    }

    public QmpClientOptions withVmName(String v) {
        return new QmpClientOptions(v, defaultTimeout, greetingTimeout, maxMessageBytes, enableOob, validateAgainstSchema, eventBacklogSize, replySpin);
    }

    public QmpClientOptions withDefaultTimeout(Duration v) {
        return new QmpClientOptions(vmName, v, greetingTimeout, maxMessageBytes, enableOob, validateAgainstSchema, eventBacklogSize, replySpin);
    }

    public QmpClientOptions withGreetingTimeout(Duration v) {
        return new QmpClientOptions(vmName, defaultTimeout, v, maxMessageBytes, enableOob, validateAgainstSchema, eventBacklogSize, replySpin);
    }

    public QmpClientOptions withMaxMessageBytes(int v) {
        return new QmpClientOptions(vmName, defaultTimeout, greetingTimeout, v, enableOob, validateAgainstSchema, eventBacklogSize, replySpin);
    }

    public QmpClientOptions withEnableOob(boolean v) {
        return new QmpClientOptions(vmName, defaultTimeout, greetingTimeout, maxMessageBytes, v, validateAgainstSchema, eventBacklogSize, replySpin);
    }

    public QmpClientOptions withValidateAgainstSchema(boolean v) {
        return new QmpClientOptions(vmName, defaultTimeout, greetingTimeout, maxMessageBytes, enableOob, v, eventBacklogSize, replySpin);
    }

    public QmpClientOptions withEventBacklogSize(int v) {
        return new QmpClientOptions(vmName, defaultTimeout, greetingTimeout, maxMessageBytes, enableOob, validateAgainstSchema, v, replySpin);
    }

    public QmpClientOptions withReplySpin(Duration v) {
        return new QmpClientOptions(vmName, defaultTimeout, greetingTimeout, maxMessageBytes, enableOob, validateAgainstSchema,
                eventBacklogSize, v);
    }

    /** Fluent builder over the record. */
    public static final class Builder {
        private QmpClientOptions o;

        private Builder(QmpClientOptions start) {
            this.o = start;
        }

        public Builder vmName(String v) {
            o = o.withVmName(v);
            return this;
        }

        public Builder defaultTimeout(Duration v) {
            o = o.withDefaultTimeout(v);
            return this;
        }

        public Builder greetingTimeout(Duration v) {
            o = o.withGreetingTimeout(v);
            return this;
        }

        public Builder maxMessageBytes(int v) {
            o = o.withMaxMessageBytes(v);
            return this;
        }

        public Builder enableOob(boolean v) {
            o = o.withEnableOob(v);
            return this;
        }

        public Builder validateAgainstSchema(boolean v) {
            o = o.withValidateAgainstSchema(v);
            return this;
        }

        public Builder eventBacklogSize(int v) {
            o = o.withEventBacklogSize(v);
            return this;
        }

        public QmpClientOptions build() {
            return o;
        }
    }
}
