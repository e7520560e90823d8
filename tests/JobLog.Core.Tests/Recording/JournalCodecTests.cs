using System.Buffers;
using System.Text;
using System.Text.Json;
using JobLog.Recording;
using JobLog.Recording.Journal;
using JobLog.Redaction;
using JobLog.Storage;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>
/// The journal writes a run's start as it is: its deferred rendering (a live message) is never serialised; and every kind
/// is written exactly as the spool's polymorphic serializer writes it (a journal line is a spool line).
/// </summary>
public class JournalCodecTests
{
    [Test]
    public void RunStarted_WithADeferredRendering_IsWrittenWithoutIt_AndReadsBack()
    {
        var taskId = Guid.NewGuid();
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = taskId, Name = "Charge", ConsumerType = "C", Start = new DateTime(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc), Host = "h" };
        var seed = new TaskPayload { Id = taskId, Name = "Charge", DispatchedAt = run.Start };
        var rendering = new DeferredRendering(new { Secret = "never-in-the-journal" }, new MessageRenderer(new Redactor(new RedactionOptions())));
        var started = new RunStarted(run, seed, true, rendering);

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            JournalCodec.Write(writer, buffer, started, new ArrayBufferWriter<byte>());
        }

        var line = Encoding.UTF8.GetString(buffer.WrittenSpan);
        Assert.That(line, Does.Not.Contain("never-in-the-journal"));
        Assert.That(line, Does.Not.Contain("Rendering"));
        var read = JournalCodec.Read(buffer.WrittenSpan) as RunStarted;
        Assert.That(read, Is.Not.Null);
        Assert.That((read!.Run, read.TaskSeed, read.ExpireOrphans, read.Rendering), Is.EqualTo((run, seed, true, (DeferredRendering?)null)));
        Assert.That(started.Rendering, Is.SameAs(rendering), "the queued record keeps its rendering for the writer");
    }

    [Test]
    public void EveryKind_IsWrittenByteForByteAsThePolymorphicSerializerWritesIt_AndReadsBack()
    {
        var t0 = new DateTime(2026, 12, 3, 1, 0, 0, DateTimeKind.Utc);
        var taskId = Guid.NewGuid();
        var runId = Guid.NewGuid();
        var full = new TaskPayload
        {
            Id = taskId, Name = "Charge \"card\" é", QueueName = "charge", Input = "Amount=3 <b>", TaskArgs = "[3]", TaskKwargs = "{\"amount\":3}",
            DispatchedAt = t0, EstimatedTimeOfFirstArrival = t0.AddSeconds(1), Expires = t0.AddHours(1), Stale = t0.AddHours(2),
            ParentRunId = Guid.NewGuid(), InputRequestId = Guid.NewGuid(), CorrelationId = Guid.NewGuid(), ConversationId = Guid.NewGuid(),
            TraceId = "0af7651916cd43dd8448eb211c80319c", SourceAddress = "rabbitmq://localhost/source", Host = "h", Release = "1.2", Slug = "s",
            ExtraData = "{}", IsInternal = true,
        };
        var bare = new TaskPayload { Id = taskId, Name = "Charge", DispatchedAt = t0 };
        var run = new RunPayload { Id = runId, TaskId = taskId, Name = "Charge", ConsumerType = "C", Start = t0, WaitingTime = 0.5, Redelivered = true, Host = "h" };
        var ended = run with { Stop = t0.AddSeconds(2), State = TaskRunState.Failed, ErrorMessage = "boom\nline 2", Output = "out\ttab", Input = "in" };
        LedgerRecord[] records =
        [
            new TaskDispatched(full),
            new TaskDispatched(bare),
            new RunStarted(run, bare, expireOrphans: false),
            new RunStarted(ended, full, expireOrphans: true),
            new RunFinished(runId, taskId, TaskRunState.Succeeded, t0, null, null, null),
            new RunFinished(runId, taskId, TaskRunState.Retried, t0.AddSeconds(1), "boom \u2028 \"quoted\"", "out", t0.AddSeconds(5)),
            new TaskDispatchFailed(taskId, "no route"),
            new RunFailedForGood(runId, taskId),
            new RunNextRetryKnown(runId, t0.AddSeconds(9)),
            new TaskExtraDataSet(taskId, "{\"progress\":1}"),
            new TaskEtaSet(taskId, t0.AddSeconds(30)),
            new CommandRecorded(new CommandPayload { Id = Guid.NewGuid(), Name = "sweep", Start = t0, Stop = t0, IsSuccessful = true, ExitCode = 0 }),
        ];

        var buffer = new ArrayBufferWriter<byte>();
        var scratch = new ArrayBufferWriter<byte>();
        using var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true });
        foreach (var record in records)
        {
            buffer.ResetWrittenCount();
            JournalCodec.Write(writer, buffer, record, scratch);

            var expected = JsonSerializer.SerializeToUtf8Bytes(record, SpoolJson.Default.LedgerRecord);
            Assert.That(Encoding.UTF8.GetString(buffer.WrittenSpan), Is.EqualTo(Encoding.UTF8.GetString(expected)), record.GetType().Name);
            Assert.That(JournalCodec.Read(buffer.WrittenSpan), Is.EqualTo(record), record.GetType().Name);
        }
    }

    /// <summary>
    /// A retried run's error text journaled again (a failure's retries carry the same ~3 KB trace) is written from the
    /// escapes kept at its first repeat: byte for byte what the serializer writes, for every escape the default encoder
    /// makes, with and without the run's output and next retry; a text the encoder refuses is left to the writer.
    /// </summary>
    [TestCase("ascii")]
    [TestCase("html")]
    [TestCase("controls")]
    [TestCase("non-ascii")]
    [TestCase("surrogate pair")]
    [TestCase("lone surrogate")]
    public void ARepeatedLongErrorText_IsWrittenFromItsKeptEscapes_ByteForByteAsTheSerializerWritesIt(string kind)
    {
        var trace = string.Concat(Enumerable.Range(0, 12).Select(i =>
            $"   at Shop.Consumers.ChargeConsumer.<Consume>d__{i}.MoveNext() in /src/Shop/ChargeConsumer.cs:line {40 + i}{Environment.NewLine}"));
        var odd = kind switch
        {
            "ascii" => "plain",
            "html" => "<b>'card' & \"quoted\" a+b `tick` \\ back</b>",
            "controls" => "tab\tcr\rnul\u0001 del\u007f",
            "non-ascii" => "déclinée \u2028 \u00a0 ü",
            "surrogate pair" => "card \U0001F4B3 declined",
            _ => "lone \ud800 surrogate",
        };
        var text = $"System.InvalidOperationException: Card declined ({odd}, {Guid.NewGuid()}).{Environment.NewLine}{trace}";
        Assert.That(text, Has.Length.GreaterThanOrEqualTo(RepeatedTexts.MinLength));
        var t0 = new DateTime(2026, 12, 3, 1, 0, 0, DateTimeKind.Utc);
        LedgerRecord[] records =
        [
            new RunFinished(Guid.NewGuid(), Guid.NewGuid(), TaskRunState.Retried, t0, text, null, null),
            new RunFinished(Guid.NewGuid(), Guid.NewGuid(), TaskRunState.Retried, t0.AddTicks(1234567), text, null, null),
            new RunFinished(Guid.NewGuid(), Guid.NewGuid(), TaskRunState.Failed, t0.AddSeconds(1), text, "out\t<tab>", t0.AddSeconds(5)),
            new RunFinished(Guid.NewGuid(), Guid.NewGuid(), TaskRunState.Retried, t0.AddSeconds(2), text, null, t0.AddMilliseconds(2500)),
        ];

        var buffer = new ArrayBufferWriter<byte>();
        var scratch = new ArrayBufferWriter<byte>();
        using var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true });
        for (var i = 0; i < records.Length; i++)
        {
            buffer.ResetWrittenCount();
            JournalCodec.Write(writer, buffer, records[i], scratch);

            var expected = JsonSerializer.SerializeToUtf8Bytes(records[i], SpoolJson.Default.LedgerRecord);
            Assert.That(Encoding.UTF8.GetString(buffer.WrittenSpan), Is.EqualTo(Encoding.UTF8.GetString(expected)), $"record {i}");
            Assert.That(buffer.WrittenSpan.SequenceEqual(expected), $"record {i}: the same bytes");
            if (kind != "lone surrogate")
            {
                // (A lone surrogate reads back as U+FFFD, as it always did.)
                Assert.That(JournalCodec.Read(buffer.WrittenSpan), Is.EqualTo(records[i]), $"record {i} reads back");
            }

            Assert.That(JournalCodec.Errors.IsEscaped(text), Is.EqualTo(i > 0 && kind != "lone surrogate"),
                $"record {i}: the first sighting is only noted, the next ones are written from the kept escapes");
        }
    }

    [Test]
    public void RepeatedTexts_KeepATextsEscapes_FromItsSecondSighting_AndNeverAShortOne()
    {
        var texts = new RepeatedTexts();
        var text = new string('x', RepeatedTexts.MinLength) + "<'é'>";
        Assert.That(texts.Encoded(text), Is.Null, "first sighting");
        var copy = new string(text.AsSpan());
        var escaped = texts.Encoded(copy);
        Assert.That(escaped, Is.Not.Null, "an equal text, not only the same instance");
        Assert.That(escaped!.Value.EncodedUtf8Bytes.SequenceEqual(JsonEncodedText.Encode(text).EncodedUtf8Bytes));
        Assert.That(texts.Encoded("short <b>"), Is.Null);
        Assert.That(texts.Encoded("short <b>"), Is.Null);
    }

    /// <summary>
    /// A journal's tail torn or damaged (a crash mid-append, a bad disk): every corrupted line either reads as nothing (skipped
    /// and counted by the replay) or as a record the writer can mask and plan, never an exception that would stop the writer.
    /// </summary>
    [Test]
    public void Read_OfLinesCorruptedAtRandom_NeverThrows_AndWhatItReturnsCanBeMaskedAndPlanned()
    {
        var t0 = new DateTime(2026, 12, 3, 1, 0, 0, DateTimeKind.Utc);
        var taskId = Guid.NewGuid();
        var runId = Guid.NewGuid();
        var full = new TaskPayload { Id = taskId, Name = "Charge", QueueName = "charge", Input = "Amount=3", TaskArgs = "[3]", TaskKwargs = "{\"amount\":3}", DispatchedAt = t0, Stale = t0.AddHours(2), Host = "h", Release = "1.2" };
        var run = new RunPayload { Id = runId, TaskId = taskId, Name = "Charge", ConsumerType = "C", Start = t0, WaitingTime = 0.5, Host = "h" };
        var ended = run with { Stop = t0.AddSeconds(2), State = TaskRunState.Failed, ErrorMessage = "boom", Output = "out", Input = "in" };
        LedgerRecord[] records =
        [
            new TaskDispatched(full), new RunStarted(run, full, expireOrphans: false), new RunStarted(ended, full, expireOrphans: true),
            new RunFinished(runId, taskId, TaskRunState.Retried, t0.AddSeconds(1), "boom", "out", t0.AddSeconds(5)),
            new TaskDispatchFailed(taskId, "no route"), new RunFailedForGood(runId, taskId), new RunNextRetryKnown(runId, t0.AddSeconds(9)),
            new TaskExtraDataSet(taskId, "{\"progress\":1}"), new TaskEtaSet(taskId, t0.AddSeconds(30)),
            new CommandRecorded(new CommandPayload { Id = Guid.NewGuid(), Name = "sweep", Start = t0, Stop = t0, IsSuccessful = true, ExitCode = 0 }),
        ];
        var lines = records.Select(r => JsonSerializer.SerializeToUtf8Bytes(r, SpoolJson.Default.LedgerRecord)).ToList();
        var planner = new LedgerPlanner(LedgerDatabase.For(LedgerProvider.Sqlite));
        var masking = new RecordMasking(new Redactor(new RedactionOptions()));
        var random = new Random(7);
        var failures = new Dictionary<string, string>();
        for (var i = 0; i < 50_000; i++)
        {
            var line = lines[random.Next(lines.Count)].ToArray();
            switch (random.Next(4))
            {
                case 0:
                    // Cut short.
                    line = line[..random.Next(line.Length)];
                    break;
                case 1:
                    line[random.Next(line.Length)] = (byte)random.Next(256);
                    break;
                case 2:
                    // A byte that keeps the JSON plausible.
                    line[random.Next(line.Length)] = (byte)"{}[]\",:0n1ft"[random.Next(12)];
                    break;
                default:
                    // A stretch gone.
                    var a = random.Next(line.Length);
                    var b = random.Next(line.Length);
                    line = [.. line[..Math.Min(a, b)], .. line[Math.Max(a, b)..]];
                    break;
            }

            LedgerRecord? record;
            try
            {
                record = JournalCodec.Read(line);
            }
            catch (Exception ex)
            {
                failures.TryAdd("read " + ex.GetType().Name, Encoding.UTF8.GetString(line) + "\n" + ex);
                continue;
            }

            if (record is null)
            {
                continue;
            }

            try
            {
                var masked = masking.Apply(record);
                planner.Plan([masked]);
            }
            catch (Exception ex)
            {
                failures.TryAdd("plan " + ex.GetType().Name + " " + record.GetType().Name, Encoding.UTF8.GetString(line) + "\n" + ex);
            }
        }

        Assert.That(failures, Is.Empty, string.Join("\n", failures.Select(f => $"{f.Key}: {f.Value}")));
    }
}
