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
/// failure) are written by hand (<see cref="JournalLines"/>), byte for byte what the polymorphic serializer writes
/// (JournalCodecTests, which sets every property of each kind by reflection): the generated serializer writes each
/// nullable value (<c>DateTime?</c>, <c>Guid?</c>, <c>double?</c>) and enum through a nested
/// <c>JsonSerializer.Serialize</c> (docs/benchmarks.md, "Session 45 (perf)"). The other kinds go through the serializer.
/// A retried run's error text seen before (<see cref="RepeatedTexts"/>) is written from its escaped bytes, kept from
/// its first repeat. The reader is the serializer's.
/// </remarks>
internal static class JournalCodec
{
    /// <summary>The long error texts journaled last (every journal of the process: escaping depends on the text alone).</summary>
    internal static readonly RepeatedTexts Errors = new();

    /// <summary>Writes <paramref name="record"/> as one JSON object (no newline).</summary>
    /// <param name="writer">Writes into <paramref name="output"/>; reset here, and flushed before this returns.</param>
    /// <param name="output">Where the JSON goes.</param>
    /// <param name="record">The record.</param>
    /// <param name="scratch">
    /// Holds the line until it is whole (cleared here): a record that fails half way (a non-finite number) leaves
    /// <paramref name="output"/> as it was.
    /// </param>
    /// <remarks><see cref="RunStarted.Rendering"/> is not serialised (<c>[JsonIgnore]</c>): the record is written as it is, without a copy.</remarks>
    public static void Write(Utf8JsonWriter writer, IBufferWriter<byte> output, LedgerRecord record, ArrayBufferWriter<byte> scratch)
    {
        if (!JournalLines.Handles(record))
        {
            writer.Reset(output);
            JsonSerializer.Serialize(writer, record, SpoolJson.Default.LedgerRecord);
            writer.Flush();
            return;
        }

        scratch.ResetWrittenCount();
        writer.Reset(scratch);
        JournalLines.Write(writer, record, Errors);
        writer.Flush();
        output.Write(scratch.WrittenSpan);
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
}
