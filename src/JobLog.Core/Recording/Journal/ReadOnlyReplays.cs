using System.Globalization;

namespace JobLog.Recording.Journal;

/// <summary>
/// The segments of a read-only journal directory that a start on this machine replayed (session 29). They cannot be
/// deleted, and before this every start replayed them again: it took as long as the outage's records each time, and
/// brought back the rows the ledger had deleted since (a retention purge, a failure resolved). A segment is known by its
/// name, length and last write time, which a read-only file system changes none of, and noted in a file of the
/// user's own directory in the temporary directory (<see cref="NoteOf"/>) once its records are committed. Once the directory takes files again, the note is deleted and
/// the segments are replayed (and deleted) as any stopped process's.
/// </summary>
internal static class ReadOnlyReplays
{
    /// <summary>
    /// The note of <paramref name="directory"/>: <c>replayed-&lt;hash&gt;</c> in <c>joblog-notes-&lt;uid&gt;</c> of the
    /// temporary directory, a directory of this user's alone (made 0700; <see cref="SpoolFiles.CheckDirectory"/>). Not a
    /// file of the temporary directory itself (session 29's first version): there another user of the machine could plant
    /// it, and a planted note left segments out of the replay (their records lost), or a planted link had the note
    /// appended to the file it named.
    /// </summary>
    public static string NoteOf(string directory) =>
        Path.Combine(NotesDirectory, "replayed-" + SpoolFiles.NameOf(Path.GetFullPath(directory)));

    private static string NotesDirectory => Path.Combine(
        Path.GetTempPath(), "joblog-notes-" + Path.GetFileName(SpoolFiles.DefaultDirectory())["joblog-".Length..]);

    /// <summary>
    /// The notes' directory, made when <paramref name="create"/>; false when it is missing, or not this user's alone (a
    /// link, another user's, writable by others), so that no note is read from it or written to it.
    /// </summary>
    private static bool IsPrivate(bool create) =>
        SpoolFiles.CheckDirectory(NotesDirectory, create) is null && Directory.Exists(NotesDirectory);

    /// <summary><paramref name="segments"/> less those noted as replayed; none left out when the note cannot be read.</summary>
    public static (List<string> Left, int Replayed) LeaveOutReplayed(string directory, List<string> segments)
    {
        HashSet<string> noted;
        try
        {
            var note = NoteOf(directory);
            noted = IsPrivate(create: false) && File.Exists(note) && new FileInfo(note).LinkTarget is null ? [.. File.ReadAllLines(note)] : [];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (segments, 0);
        }

        var left = segments.Where(s => !noted.Contains(Fingerprint(s))).ToList();
        return (left, segments.Count - left.Count);
    }

    /// <summary>Notes <paramref name="segment"/> as replayed (its records committed).</summary>
    public static void Note(string segment)
    {
        var note = NoteOf(Path.GetDirectoryName(segment) ?? ".");
        if (!IsPrivate(create: true) || (File.Exists(note) && new FileInfo(note).LinkTarget is not null))
        {
            throw new UnauthorizedAccessException($"{Path.GetDirectoryName(note)} is not this user's alone (a link, or open to others): no note is kept there.");
        }

        File.AppendAllLines(note, [Fingerprint(segment)]);
    }

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
