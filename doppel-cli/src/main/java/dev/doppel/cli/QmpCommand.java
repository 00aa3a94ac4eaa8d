package dev.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.doppel.qmp.QmpClient;
import dev.doppel.vm.VmRecord;
import dev.doppel.vm.VmRunDir;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code doppel qmp VM JSON}: one QMP command against a running VM, reply printed as JSON. */
@Command(name = "qmp", description = "Run one QMP command, e.g. doppel qmp vm1 '{\"execute\":\"query-status\"}' or doppel qmp vm1 query-status")
public final class QmpCommand implements Callable<Integer> {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    @Parameters(index = "0", description = "VM name") String name;
    @Parameters(index = "1", description = "a QMP message {\"execute\":…,\"arguments\":…} or a bare command name") String message;

    @Override
    public Integer call() throws Exception {
        VmRunDir dir = VmCommand.existing(name);
        if (!VmRecord.readFrom(dir).alive()) {
            throw new IllegalStateException("VM '" + name + "' is not running");
        }
        String command;
        JsonNode arguments = null;
        if (message.trim().startsWith("{")) {
            JsonNode msg = MAPPER.readTree(message);
            if (!msg.hasNonNull("execute")) {
                throw new IllegalArgumentException("QMP message needs an \"execute\" member: " + message);
            }
            command = msg.get("execute").asText();
            arguments = msg.get("arguments");
        } else {
            command = message.trim();
        }
        try (QmpClient qmp = QmpClient.connectUnix(dir.qmpSocket(), name, Duration.ofSeconds(5))) {
            JsonNode reply = qmp.execute(command, arguments, Duration.ofSeconds(30));
            System.out.println(MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(reply));
        }
        return 0;
    }
}
