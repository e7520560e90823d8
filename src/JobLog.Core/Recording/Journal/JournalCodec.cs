using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace JobLog.Recording.Journal;

/// <summary>
/// How a record is written to the journal and read back: one JSON object per line, the spool's format
/// (<see cref="SpoolJson"/>). A run's deferred rendering is not forced (that would render every consumed message): a
/// run replayed from the journal whose task row is missing gets a task row without the message's input.
/// </summary>
/// <remarks>
/// The kinds every message produces (a dispatch, a run's start and end, and a retried run's next attempt and last
/// failure) are written through their own generated
/// serializer (no serializer state, nothing allocated) behind their <c>"Kind"</c> discriminator, byte for byte what the
/// polymorphic serializer writes (JournalCodecTests); the other kinds go through it. A retried run's error text seen
/// before (<see cref="RepeatedTexts"/>) is written from its escaped bytes, kept from its first repeat.
/// </remarks>
internal static class JournalCodec
{
    private static readonly byte[] DispatchedKind = KindPrefix("dispatched");
    private static readonly byte[] RunStartedKind = KindPrefix("runStarted");
    private static readonly byte[] RunFinishedKind = KindPrefix("runFinished");
    private static readonly byte[] RunNextRetryKind = KindPrefix("runNextRetry");
    private static readonly byte[] RunFailedForGoodKind = KindPrefix("runFailedForGood");

    // RunFinished's JSON names, in the order its generated serializer writes them.
    private static readonly JsonEncodedText RunIdName = JsonEncodedText.Encode(nameof(RunFinished.RunId));
    private static readonly JsonEncodedText TaskIdName = JsonEncodedText.Encode(nameof(RunFinished.TaskId));
    private static readonly JsonEncodedText StateName = JsonEncodedText.Encode(nameof(RunFinished.State));
    private static readonly JsonEncodedText TimeName = JsonEncodedText.Encode("Time");
    private static readonly JsonEncodedText ErrorName = JsonEncodedText.Encode("Error");
    private static readonly JsonEncodedText OutputName = JsonEncodedText.Encode(nameof(RunFinished.Output));
    private static readonly JsonEncodedText NextRetryName = JsonEncodedText.Encode(nameof(RunFinished.NextRetry));

    /// <summary>The long error texts journaled last (every journal of the process: escaping depends on the text alone).</summary>
    internal static readonly RepeatedTexts Errors = new();

    /// <summary>Writes <paramref name="record"/> as one JSON object (no newline).</summary>
    /// <param name="writer">Writes into <paramref name="output"/>; reset here, and flushed before this returns.</param>
    /// <param name="output">Where the JSON goes.</param>
    /// <param name="record">The record.</param>
    /// <param name="scratch">Holds the object before its discriminator is put in front (cleared here).</param>
    /// <remarks><see cref="RunStarted.Rendering"/> is not serialised (<c>[JsonIgnore]</c>): the record is written as it is, without a copy.</remarks>
    public static void Write(Utf8JsonWriter writer, IBufferWriter<byte> output, LedgerRecord record, ArrayBufferWriter<byte> scratch)
    {
        switch (record)
        {
            case TaskDispatched d:
                WriteKind(writer, output, DispatchedKind, d, SpoolJson.Default.TaskDispatched, scratch);
                return;
            case RunStarted s:
                WriteKind(writer, output, RunStartedKind, s, SpoolJson.Default.RunStarted, scratch);
                return;
            case RunFinished { ErrorMessage: { } error } f when writer.Options.Encoder is null && Errors.Encoded(error) is { } escaped:
                // A text written before: its escapes are copied, not made again (docs/benchmarks.md, "Session 44 (retries)").
                scratch.ResetWrittenCount();
                writer.Reset(scratch);
                WriteRunFinished(writer, f, escaped);
                writer.Flush();
                WithKind(output, RunFinishedKind, scratch);
                return;
            case RunFinished f:
                WriteKind(writer, output, RunFinishedKind, f, SpoolJson.Default.RunFinished, scratch);
                return;
            case RunNextRetryKnown n:
                WriteKind(writer, output, RunNextRetryKind, n, SpoolJson.Default.RunNextRetryKnown, scratch);
                return;
            case RunFailedForGood g:
                WriteKind(writer, output, RunFailedForGoodKind, g, SpoolJson.Default.RunFailedForGood, scratch);
                return;
            default:
                writer.Reset(output);
                JsonSerializer.Serialize(writer, record, SpoolJson.Default.LedgerRecord);
                writer.Flush();
                return;
        }
    }

    /// <summary>The record of a journal line; null when the line cannot be read, or lacks what its kind needs.</summary>
    public static LedgerRecord? Read(ReadOnlySpan<byte> line)
    {
        try
        {
            return JsonSerializer.Deserialize(line, SpoolJson.Default.LedgerRecord) is { } record && SpoolFormat.IsComplete(record) ? record : null;
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary><c>{"Kind":"…"</c>, the start the polymorphic serializer gives every object of the kind.</summary>
    private static byte[] KindPrefix(string kind) => Encoding.UTF8.GetBytes($"{{\"Kind\":\"{kind}\"");

    private static void WriteKind<T>(Utf8JsonWriter writer, IBufferWriter<byte> output, byte[] kind, T record, JsonTypeInfo<T> type, ArrayBufferWriter<byte> scratch)
    {
        scratch.ResetWrittenCount();
        writer.Reset(scratch);
        JsonSerializer.Serialize(writer, record, type);
        writer.Flush();
        WithKind(output, kind, scratch);
    }

    /// <summary>
    /// <paramref name="record"/> as its generated serializer writes it (the default encoder, nulls left out), its error
    /// text given already escaped.
    /// </summary>
    private static void WriteRunFinished(Utf8JsonWriter writer, RunFinished record, JsonEncodedText error)
    {
        writer.WriteStartObject();
        writer.WriteString(RunIdName, record.RunId);
        writer.WriteString(TaskIdName, record.TaskId);
        writer.WriteNumber(StateName, (int)record.State);
        writer.WriteString(TimeName, record.Stop);
        writer.WriteString(ErrorName, error);
        if (record.Output is { } output)
        {
            writer.WriteString(OutputName, output);
        }

        if (record.NextRetry is { } next)
        {
            writer.WriteString(NextRetryName, next);
        }

        writer.WriteEndObject();
    }

    private static void WithKind(IBufferWriter<byte> output, byte[] kind, ArrayBufferWriter<byte> scratch)
    {
        // The object as its own type writes no discriminator: "{" + properties + "}" becomes {"Kind":"…", + properties + "}".
        var body = scratch.WrittenSpan;
        output.Write(kind);
        if (body.Length > 2)
        {
            output.Write(","u8);
        }

        output.Write(body[1..]);
    }
}
