package dev.doppel.cli.bench;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** A benchmark's output: a two-column table for people, then the same figures as one JSON line. */
public final class BenchReport {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final String title;
    private final List<String[]> rows = new ArrayList<>();
    private final Map<String, Object> figures = new LinkedHashMap<>();

    public BenchReport(String title) {
        this.title = title;
    }

    /** A figure that appears in both the table and the JSON line. */
    public BenchReport figure(String key, String label, Object value) {
        figures.put(key, value);
        rows.add(new String[] {label, format(value)});
        return this;
    }

    /** A table-only line (context such as the machine). */
    public BenchReport note(String label, Object value) {
        rows.add(new String[] {label, String.valueOf(value)});
        return this;
    }

    /** A JSON-only figure. */
    public BenchReport json(String key, Object value) {
        figures.put(key, value);
        return this;
    }

    public void print(PrintStream out) {
        int w = rows.stream().mapToInt(r -> r[0].length()).max().orElse(10);
        out.println(title);
        out.println("-".repeat(Math.max(title.length(), w + 20)));
        for (String[] r : rows) {
            out.printf("%-" + w + "s  %s%n", r[0], r[1]);
        }
        try {
            out.println(MAPPER.writeValueAsString(figures));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        out.flush();
    }

    private static String format(Object v) {
        if (v instanceof Double d) {
            return String.format("%.3f", d);
        }
        return String.valueOf(v);
    }
}
