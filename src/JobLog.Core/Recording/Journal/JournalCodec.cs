using System.Text.Json;

namespace JobLog.Recording.Journal;

/// <summary>
/// How a record is written to the journal and read back: one JSON object per line, the spool's format
/// (<see cref="SpoolJson"/>). A run's deferred rendering is not forced (that would render every consumed message): a
/// run replayed from the journal whose task row is missing gets a task row without the message's input.
/// </summary>
internal static class JournalCodec
{
    /// <remarks><see cref="RunStarted.Rendering"/> is not serialised (<c>[JsonIgnore]</c>): the record is written as it is, without a copy.</remarks>
    public static void Write(Utf8JsonWriter writer, LedgerRecord record) =>
        JsonSerializer.Serialize(writer, record, SpoolJson.Default.LedgerRecord);

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
