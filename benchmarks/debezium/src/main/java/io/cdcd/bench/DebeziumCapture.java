package io.cdcd.bench;

import io.debezium.embedded.Connect;
import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;

import java.io.BufferedOutputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * Debezium's embedded engine writing every change record to a file, one JSON line each:
 * {@code {"topic": ..., "key": ..., "value": ...}}, key and value as Kafka Connect's
 * JsonConverter writes them with {@code schemas.enable=true} ({@code {"schema", "payload"}};
 * a tombstone's value {@code null}). The differential harness of tests/compat/ compares
 * them with cdcd's records of the same changes.
 *
 * <p>Usage: {@code DebeziumCapture <properties file>}. {@code capture.output} names the
 * output file; {@code capture.seed.offset.key}/{@code .value} (JSON) an offset written
 * into the file offset store first, as {@code DebeziumBench} does (a binlog connector then
 * starts at that position); every other key configures the engine and the connector. A batch is marked
 * processed once written and flushed. It runs until stopped (SIGTERM); it exits 3 if the
 * engine stops by itself (a failure, printed on standard error).
 */
public final class DebeziumCapture {

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: DebeziumCapture <properties file>");
            System.exit(2);
        }
        Properties all = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            all.load(in);
        }
        String output = all.getProperty("capture.output");
        if (output == null) {
            System.err.println("capture.output is not set");
            System.exit(2);
        }
        all.remove("capture.output");
        String seedKey = (String) all.remove("capture.seed.offset.key");
        String seedValue = (String) all.remove("capture.seed.offset.value");
        if (seedKey != null) {
            DebeziumBench.seedOffset(all.getProperty("offset.storage.file.filename"), seedKey, seedValue);
        }
        OutputStream out = new BufferedOutputStream(new FileOutputStream(output, true));

        JsonConverter keyConverter = new JsonConverter();
        keyConverter.configure(Map.of("schemas.enable", "true"), true);
        JsonConverter valueConverter = new JsonConverter();
        valueConverter.configure(Map.of("schemas.enable", "true"), false);
        byte[] nothing = "null".getBytes(StandardCharsets.UTF_8);

        DebeziumEngine<ChangeEvent<SourceRecord, SourceRecord>> engine = DebeziumEngine.create(Connect.class)
                .using(all)
                .notifying((records, committer) -> {
                    for (ChangeEvent<SourceRecord, SourceRecord> change : records) {
                        SourceRecord record = change.value();
                        String topic = record.topic();
                        byte[] key = keyConverter.fromConnectData(topic, record.keySchema(), record.key());
                        byte[] value = valueConverter.fromConnectData(topic, record.valueSchema(), record.value());
                        try {
                            out.write(("{\"topic\":\"" + topic.replace("\"", "\\\"") + "\",\"key\":")
                                    .getBytes(StandardCharsets.UTF_8));
                            out.write(key == null ? nothing : key);
                            out.write(",\"value\":".getBytes(StandardCharsets.UTF_8));
                            out.write(value == null ? nothing : value);
                            out.write("}\n".getBytes(StandardCharsets.UTF_8));
                        } catch (java.io.IOException e) {
                            throw new RuntimeException("cannot write " + output, e);
                        }
                    }
                    try {
                        out.flush();
                    } catch (java.io.IOException e) {
                        throw new RuntimeException("cannot write " + output, e);
                    }
                    for (ChangeEvent<SourceRecord, SourceRecord> change : records) {
                        committer.markProcessed(change);
                    }
                    committer.markBatchFinished();
                })
                .using((success, message, error) -> {
                    System.err.println((success ? "engine stopped: " : "engine failed: ") + message);
                    if (error != null) {
                        error.printStackTrace();
                    }
                    if (!success) {
                        // The engine gave up (a bad setting, a lost connection): the
                        // harness sees the exit at once instead of waiting for records.
                        System.err.flush();
                        Runtime.getRuntime().halt(3);
                    }
                })
                .build();

        ExecutorService executor = Executors.newSingleThreadExecutor();
        executor.execute(engine);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                engine.close();
                executor.shutdown();
                executor.awaitTermination(30, TimeUnit.SECONDS);
                out.close();
            } catch (Exception e) {
                e.printStackTrace();
            }
        }));
        while (!executor.isTerminated()) {
            executor.awaitTermination(1, TimeUnit.SECONDS);
        }
        System.exit(3);
    }
}
