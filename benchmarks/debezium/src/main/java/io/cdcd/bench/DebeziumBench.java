package io.cdcd.bench;

import io.debezium.embedded.Connect;
import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;

import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * Debezium's embedded engine writing every change record to Kafka, as Debezium Server's
 * Kafka sink does: each record converted by a JsonConverter (schemas.enable=false) and
 * sent by a KafkaProducer; a batch is marked processed once Kafka acknowledged all of it.
 *
 * <p>Usage: {@code DebeziumBench <properties file>}. Keys starting with {@code producer.}
 * configure the producer, {@code bench.*} this runner, everything else the engine and the
 * connector. {@code bench.seed.offset.key}/{@code .value} (JSON) are written into the
 * file offset store before the engine starts, so that a binlog connector starts at a
 * chosen position. Progress and the final counts are JSON lines on standard output.
 */
public final class DebeziumBench {

    private static final AtomicLong events = new AtomicLong();
    private static final AtomicLong tombstones = new AtomicLong();
    private static volatile long firstEventMs = 0;
    private static volatile long lastEventMs = 0;
    private static final long startedMs = System.currentTimeMillis();

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: DebeziumBench <properties file>");
            System.exit(2);
        }
        Properties all = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            all.load(in);
        }
        Properties engineProps = new Properties();
        Properties producerProps = new Properties();
        Map<String, String> bench = new HashMap<>();
        for (String name : all.stringPropertyNames()) {
            String value = all.getProperty(name);
            if (name.startsWith("producer.")) {
                producerProps.setProperty(name.substring("producer.".length()), value);
            } else if (name.startsWith("bench.")) {
                bench.put(name.substring("bench.".length()), value);
            } else {
                engineProps.setProperty(name, value);
            }
        }
        if (bench.containsKey("seed.offset.key")) {
            seedOffset(engineProps.getProperty("offset.storage.file.filename"),
                    bench.get("seed.offset.key"), bench.get("seed.offset.value"));
        }

        producerProps.putIfAbsent(ProducerConfig.ACKS_CONFIG, "all");
        producerProps.putIfAbsent(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        producerProps.putIfAbsent(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
        producerProps.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        producerProps.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerProps);

        JsonConverter keyConverter = new JsonConverter();
        keyConverter.configure(Map.of("schemas.enable", "false"), true);
        JsonConverter valueConverter = new JsonConverter();
        valueConverter.configure(Map.of("schemas.enable", "false"), false);

        DebeziumEngine<ChangeEvent<SourceRecord, SourceRecord>> engine = DebeziumEngine.create(Connect.class)
                .using(engineProps)
                .notifying((records, committer) -> {
                    List<Future<RecordMetadata>> sent = new ArrayList<>(records.size());
                    for (ChangeEvent<SourceRecord, SourceRecord> change : records) {
                        SourceRecord record = change.value();
                        String topic = record.topic();
                        byte[] key = keyConverter.fromConnectData(topic, record.keySchema(), record.key());
                        byte[] value = valueConverter.fromConnectData(topic, record.valueSchema(), record.value());
                        sent.add(producer.send(new ProducerRecord<>(topic, null, key, value)));
                        if (value == null) {
                            tombstones.incrementAndGet();
                        } else {
                            long now = System.currentTimeMillis();
                            if (firstEventMs == 0) {
                                firstEventMs = now;
                            }
                            lastEventMs = now;
                            events.incrementAndGet();
                        }
                    }
                    try {
                        for (Future<RecordMetadata> future : sent) {
                            future.get();
                        }
                    } catch (java.util.concurrent.ExecutionException e) {
                        throw new RuntimeException("Kafka refused a record", e.getCause());
                    }
                    for (ChangeEvent<SourceRecord, SourceRecord> change : records) {
                        committer.markProcessed(change);
                    }
                    committer.markBatchFinished();
                })
                .using((success, message, error) -> {
                    report(success ? "engine-stopped" : "engine-failed", message);
                    if (error != null) {
                        error.printStackTrace();
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
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                producer.close();
                report("final", null);
            }
        }));
        long interval = Long.parseLong(bench.getOrDefault("stats.interval.ms", "1000"));
        while (!executor.isTerminated()) {
            executor.awaitTermination(interval, TimeUnit.MILLISECONDS);
            report("progress", null);
        }
        // The engine stopped by itself (a failure): exit nonzero so the harness records it.
        producer.close();
        System.exit(3);
    }

    private static synchronized void report(String kind, String message) {
        StringBuilder line = new StringBuilder();
        line.append("{\"kind\":\"").append(kind).append('"')
                .append(",\"events\":").append(events.get())
                .append(",\"tombstones\":").append(tombstones.get())
                .append(",\"started_ms\":").append(startedMs)
                .append(",\"first_event_ms\":").append(firstEventMs)
                .append(",\"last_event_ms\":").append(lastEventMs)
                .append(",\"now_ms\":").append(System.currentTimeMillis());
        if (message != null) {
            line.append(",\"message\":\"")
                    .append(message.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " "))
                    .append('"');
        }
        line.append('}');
        System.out.println(line);
        System.out.flush();
    }

    /**
     * Writes one offset into a FileOffsetBackingStore file as Kafka Connect stores it: a
     * serialized HashMap of the key and value bytes (both JSON without schema).
     */
    static void seedOffset(String file, String key, String value) throws IOException {
        HashMap<byte[], byte[]> raw = new HashMap<>();
        raw.put(key.getBytes(StandardCharsets.UTF_8), value.getBytes(StandardCharsets.UTF_8));
        try (ObjectOutputStream out = new ObjectOutputStream(new FileOutputStream(file))) {
            out.writeObject(raw);
        }
    }
}
