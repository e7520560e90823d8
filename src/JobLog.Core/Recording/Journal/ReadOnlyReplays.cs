using System.Globalization;

namespace JobLog.Recording.Journal;

/// <summary>
/// The segments of a read-only journal directory that a start on this machine replayed (session 29). They cannot be
/// deleted, and before this every start replayed them again: it took as long as the outage's records each time, and
/// brought back the rows the ledger had deleted since (a retention purge, a failure resolved). A segment is known by its
/// name, length and last write time, which a read-only file system changes none of, and noted in a file of the
/// temporary directory once its records are committed. Once the directory takes files again, the note is deleted and
/// the segments are replayed (and deleted) as any stopped process's.
/// </summary>
internal static class ReadOnlyReplays
{
    /// <summary>The note of <paramref name="directory"/>: <c>joblog-replayed-&lt;hash&gt;</c> in the temporary directory.</summary>
    public static string NoteOf(string directory) =>
        Path.Combine(Path.GetTempPath(), "joblog-replayed-" + SpoolFiles.NameOf(Path.GetFullPath(directory)));

    /// <summary><paramref name="segments"/> less those noted as replayed; none left out when the note cannot be read.</summary>
    public static (List<string> Left, int Replayed) LeaveOutReplayed(string directory, List<string> segments)
    {
        HashSet<string> noted;
        try
        {
            noted = File.Exists(NoteOf(directory)) ? [.. File.ReadAllLines(NoteOf(directory))] : [];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (segments, 0);
        }

        var left = segments.Where(s => !noted.Contains(Fingerprint(s))).ToList();
        return (left, segments.Count - left.Count);
    }

    /// <summary>Notes <paramref name="segment"/> as replayed (its records committed).</summary>
    public static void Note(string segment) =>
        File.AppendAllLines(NoteOf(Path.GetDirectoryName(segment) ?? "."), [Fingerprint(segment)]);

    /// <summary>The directory takes files again: its note goes.</summary>
    public static void Forget(string directory)
    {
        try
        {
            File.Delete(NoteOf(directory));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Kept: read only while the directory is read-only again.
        }
    }

    private static string Fingerprint(string segment)
    {
        var file = new FileInfo(segment);
        return string.Create(CultureInfo.InvariantCulture, $"{file.Name}\t{file.Length}\t{file.LastWriteTimeUtc.Ticks}");
    }
}
