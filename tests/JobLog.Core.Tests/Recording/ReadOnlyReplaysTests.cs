using JobLog.Recording.Journal;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>
/// The note of the segments replayed from a read-only journal directory (<see cref="ReadOnlyReplays"/>) is kept where no
/// other user of the machine can plant it: a planted note left segments out of the replay (their records lost), a planted
/// link had the note appended to the file it named.
/// </summary>
[TestFixture]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class ReadOnlyReplaysTests
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private string _journal = null!;
    private string _segment = null!;

    [SetUp]
    public void SetUp()
    {
        _journal = Directory.CreateTempSubdirectory("joblog-notes-test-").FullName;
        _segment = Path.Combine(_journal, "segment-1.journal");
        File.WriteAllText(_segment, "records");
    }

    [TearDown]
    public void TearDown()
    {
        File.Delete(ReadOnlyReplays.NoteOf(_journal));
        Directory.Delete(_journal, recursive: true);
    }

    [Test]
    public void Note_IsKeptInADirectoryOfThisUsersAlone()
    {
        ReadOnlyReplays.Note(_segment);

        var directory = Path.GetDirectoryName(ReadOnlyReplays.NoteOf(_journal))!;
        Assert.That(File.GetUnixFileMode(directory), Is.EqualTo(Private), directory);
    }

    [Test]
    public void Note_WhereALinkWasPlanted_DoesNotWriteToTheFileTheLinkNames()
    {
        // The notes' directory exists (another journal's note).
        var other = Directory.CreateTempSubdirectory("joblog-notes-test-").FullName;
        var victim = Path.Combine(_journal, "victim.txt");
        try
        {
            File.WriteAllText(Path.Combine(other, "segment-0.journal"), "x");
            ReadOnlyReplays.Note(Path.Combine(other, "segment-0.journal"));
            File.WriteAllText(victim, "mine\n");
            File.CreateSymbolicLink(ReadOnlyReplays.NoteOf(_journal), victim);

            try
            {
                ReadOnlyReplays.Note(_segment);
            }
            catch (UnauthorizedAccessException)
            {
                // Refused: the recorder logs it and keeps the segment unnoted.
            }

            Assert.That(File.ReadAllText(victim), Is.EqualTo("mine\n"));
        }
        finally
        {
            File.Delete(ReadOnlyReplays.NoteOf(other));
            Directory.Delete(other, recursive: true);
        }
    }

    [Test]
    public void LeaveOutReplayed_ANoteInADirectoryOpenToOthers_IsNotTrusted()
    {
        ReadOnlyReplays.Note(_segment);
        Assert.That(ReadOnlyReplays.LeaveOutReplayed(_journal, [_segment]).Left, Is.Empty, "noted: left out");

        var directory = Path.GetDirectoryName(ReadOnlyReplays.NoteOf(_journal))!;
        Assume.That(directory, Is.Not.EqualTo(Path.GetTempPath().TrimEnd('/')), "never change the temporary directory's mode");
        File.SetUnixFileMode(directory, Private | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);
        try
        {
            Assert.That(ReadOnlyReplays.LeaveOutReplayed(_journal, [_segment]).Left, Is.EqualTo(new[] { _segment }));
        }
        finally
        {
            File.SetUnixFileMode(directory, Private);
        }
    }
}
