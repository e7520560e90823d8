using System.Text;
using JobLog.Recording.Journal;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>The journal's files: appended, closed at their size, deleted once committed, read back after a crash.</summary>
[Platform("Linux")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class JournalSegmentsTests
{
    private const string Ledger = "Data Source=journal-test.db";

    private string _root = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Path.Combine(Path.GetTempPath(), "joblog-test-journal-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    private static byte[] Lines(params string[] lines) => Encoding.UTF8.GetBytes(string.Concat(lines.Select(l => l + "\n")));

    private string[] Files() => [.. Directory.GetFiles(_root, "*.journal").Select(Path.GetFileName).Order()!];

    [Test]
    public void Checkpoint_DeletesOnlySegmentsWhoseRecordsAreAllCommitted()
    {
        using var journal = JournalSegments.Claim(_root, Ledger, segmentBytes: 10, flushToDisk: false)!;
        journal.Append(Lines("one", "two"), lastSequence: 2);   // 8 bytes: stays open
        journal.Append(Lines("three"), lastSequence: 3);        // 14 bytes: closed
        journal.Append(Lines("four"), lastSequence: 4);         // a second segment
        Assert.That(Files(), Has.Length.EqualTo(2));

        journal.Checkpoint(2);
        Assert.That(Files(), Has.Length.EqualTo(2), "the first segment still holds record 3");

        journal.Checkpoint(3);
        Assert.That(Files(), Has.Length.EqualTo(1));

        journal.Checkpoint(4);
        Assert.That(Files(), Is.Empty, "the open segment is closed and deleted once all of it is committed");
        Assert.That(journal.Bytes, Is.Zero);

        journal.Append(Lines("five"), lastSequence: 5);
        Assert.That(Files(), Has.Length.EqualTo(1), "the next append starts a new segment");
    }

    [Test]
    public void LookingForStoppedProcessesSegments_ListsTheDirectoryOncePerLedgerName_NotOncePerSlot()
    {
        // The directory is shared by every ledger of the user on the machine: thousands of lock files where tests or
        // benchmarks made throwaway ledgers. A listing per slot (16, and 16 more under the former name) every 10 s cost a
        // writer 5 % of a core (session 26's profile).
        for (var i = 0; i < 50; i++)
        {
            File.WriteAllText(Path.Combine(_root, $"joblog-{i:x16}-0.journal.lock"), "");
        }

        var stopped = JournalSegments.Claim(_root, Ledger, 1 << 20, false, formerly: "Data Source=old.db")!;
        stopped.Append(Lines("r1"), 1);
        stopped.Dispose();

        using var journal = JournalSegments.Claim(_root, Ledger, 1 << 20, false, formerly: "Data Source=old.db")!;
        var before = JournalSegments.Listings;
        var leftOvers = journal.TakeLeftOvers();

        Assert.That(leftOvers, Has.Count.EqualTo(1), "the stopped process's segment is found");
        Assert.That(JournalSegments.Listings - before, Is.InRange(2, 3), "one listing under each of the two names, and one more of the slot it adopts");
    }

    [Test]
    public void TwoLiveProcesses_HoldTwoSlots()
    {
        using var first = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;
        using var second = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;
        first.Append(Lines("a"), 1);
        second.Append(Lines("b"), 1);

        Assert.That(Files(), Has.Length.EqualTo(2));
        Assert.That(Files()[0][..^18], Is.Not.EqualTo(Files()[1][..^18]), "each in its own slot");
    }

    [Test]
    public void AStoppedProcessesSegments_AreReadByTheNextOne_InOrder_WithTheCutLineCounted()
    {
        var crashed = JournalSegments.Claim(_root, Ledger, segmentBytes: 8, flushToDisk: false)!;
        crashed.Append(Lines("r1", "r2", "r3"), 3);
        crashed.Append(Lines("r4"), 4);
        crashed.Dispose(); // the lock goes with the process; nothing was checkpointed
        var last = Directory.GetFiles(_root, "*.journal").Order().Last();
        File.AppendAllText(last, "{\"cut"); // a write the crash cut

        using var next = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;
        var leftOvers = next.TakeLeftOvers();
        var lines = new List<string>();
        var cut = 0;
        foreach (var path in leftOvers)
        {
            lines.AddRange(JournalSegments.Read(path, out var c).Select(l => Encoding.UTF8.GetString(l)));
            cut += c;
        }

        Assert.That(lines, Is.EqualTo(new[] { "r1", "r2", "r3", "r4" }));
        Assert.That(cut, Is.EqualTo(1));

        next.Append(Lines("new"), 1);
        Assert.That(Files().Last(), Does.Not.Contain(".0000000001."), "the new owner numbers its segments after the left-overs");
        foreach (var path in leftOvers)
        {
            JournalSegments.Forget(path);
        }

        Assert.That(Files(), Has.Length.EqualTo(1));
    }

    [Test]
    public void LeftOversNamedAfterTheConnectionString_ByVersionsBeforeSession21_AreTakenToo()
    {
        var crashed = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;
        crashed.Append(Lines("old"), 1);
        crashed.Dispose();

        using var next = JournalSegments.Claim(_root, "sqlite:/var/lib/app/journal-test.db", 1 << 20, false, formerly: Ledger)!;
        var leftOvers = next.TakeLeftOvers();

        Assert.That(leftOvers, Has.Count.EqualTo(1));
        Assert.That(JournalSegments.Read(leftOvers[0], out _).Select(l => Encoding.UTF8.GetString(l)), Is.EqualTo(new[] { "old" }));
    }

    [Test]
    public void ASlotWhoseLockFileWasDeleted_DoesNotGiveTheSegmentItsLiveOwnerAppendsToAway()
    {
        using var running = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;
        running.Append(Lines("mine"), 1);

        // A temporary-file cleaner removes the slot's lock file (old, never modified) while its owner runs.
        foreach (var lockFile in Directory.GetFiles(_root, "*.journal.lock"))
        {
            File.Delete(lockFile);
        }

        using var next = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;

        Assert.That(next.TakeLeftOvers(), Is.Empty, "replayed and deleted, what its owner appends next would be in no file");
    }

    [Test]
    public void ASlotWhoseLockFileWasDeleted_DoesNotGiveItsLiveOwnersClosedSegmentsAway()
    {
        using var running = JournalSegments.Claim(_root, Ledger, segmentBytes: 10, flushToDisk: false)!;
        running.Append(Lines("closed-one"), 1); // 11 bytes: closed, its record not committed yet
        running.Append(Lines("open"), 2);

        foreach (var lockFile in Directory.GetFiles(_root, "*.journal.lock"))
        {
            File.Delete(lockFile);
        }

        using var next = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;

        Assert.That(next.TakeLeftOvers(), Is.Empty, "its owner commits and deletes them: taken here too, their records would be written twice");
    }

    [Test]
    public void ASlotWhoseLockFileWasDeleted_IsLockedAgainByItsOwner_AtItsNextSegment()
    {
        using var running = JournalSegments.Claim(_root, Ledger, segmentBytes: 10, flushToDisk: false)!;
        running.Append(Lines("closed-one"), 1);
        var lockFile = Directory.GetFiles(_root, "*.journal.lock").Single();
        File.Delete(lockFile);

        running.Append(Lines("next"), 2);

        Assert.That(File.Exists(lockFile), Is.True, "the owner made its slot's lock file again");
        Assert.That(() => new FileStream(lockFile, FileMode.Open, FileAccess.ReadWrite, FileShare.None).Dispose(), Throws.InstanceOf<IOException>(), "and holds it");
    }

    [Test]
    public void JournalDirectoryDeletedWhileItsOwnerRuns_TheNextAppendMakesItAgain_WithEveryRecordNotYetCommitted()
    {
        var lost = new List<(string Directory, int Segments)>();
        var running = JournalSegments.Claim(_root, Ledger, segmentBytes: 10, flushToDisk: false)!;
        running.Lost = (directory, segments, _) => lost.Add((directory, segments));
        running.Append(Lines("one"), 1);        // 4 bytes
        running.Append(Lines("two", "three"), 3); // 14 bytes: closed
        running.Append(Lines("four"), 4);       // a second segment, open
        running.Checkpoint(1);                  // nothing deleted: the first segment still holds 2 and 3

        // An operator or a cleaner removes the journal's directory: the open segment and the closed one are unlinked.
        Directory.Delete(_root, recursive: true);
        running.Append(Lines("five"), 5);

        // The process killed now (its locks gone with it): the next one finds every record not committed.
        running.Dispose();
        using var next = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;
        var lines = next.TakeLeftOvers().SelectMany(path => JournalSegments.Read(path, out _)).Select(l => Encoding.UTF8.GetString(l));
        Assert.That(lines, Is.EqualTo(new[] { "one", "two", "three", "four", "five" }));
        Assert.That(lost, Is.EqualTo(new[] { (_root, 2) }), "the loss is noticed at the next append, and both segments written again");
    }

    [Test]
    public void JournalDirectoryDeleted_TheSegmentsWrittenAgainAreDeletedByTheCheckpoints()
    {
        using var running = JournalSegments.Claim(_root, Ledger, segmentBytes: 10, flushToDisk: false)!;
        running.Append(Lines("one", "two", "three"), 3); // closed
        running.Append(Lines("four"), 4);

        Directory.Delete(_root, recursive: true);
        running.Append(Lines("five"), 5);
        Assert.That(Files(), Has.Length.EqualTo(2));

        running.Checkpoint(3);
        Assert.That(Files(), Has.Length.EqualTo(1), "the first segment's records are committed");
        running.Checkpoint(5);
        Assert.That(Files(), Is.Empty);
    }

    [Test]
    public void LeftOversOfAnotherSlot_AreAdopted_UnlessItsProcessIsAlive()
    {
        using var running = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;
        var alive = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;
        alive.Append(Lines("alive"), 1);

        Assert.That(running.TakeLeftOvers(), Is.Empty, "a live process's journal is its own");

        alive.Dispose();
        var adopted = running.TakeLeftOvers();
        Assert.That(adopted, Has.Count.EqualTo(1));
        Assert.That(JournalSegments.Read(adopted[0], out _).Select(l => Encoding.UTF8.GetString(l)), Is.EqualTo(new[] { "alive" }));
        Assert.That(running.TakeLeftOvers(), Is.Empty, "an adopted slot stays locked by its adopter: its segments are handed out once");
    }

    [Test]
    public void LeftOversOfAStoppedProcess_DeletedWhileTheNextOneReplaysThem_AreWrittenAgain_AndFoundByTheProcessAfter([Values] bool idle)
    {
        // A process killed with three segments not committed (segments of 10 bytes).
        var killed = JournalSegments.Claim(_root, Ledger, segmentBytes: 10, flushToDisk: false)!;
        killed.Append(Lines("one", "two", "three"), 3);
        killed.Append(Lines("four", "five", "six"), 6);
        killed.Append(Lines("seven"), 7);
        killed.Dispose();

        // The next one takes them and replays the first (read, not yet committed); the others wait their turn.
        var lost = new List<(string Directory, int Segments)>();
        var running = JournalSegments.Claim(_root, Ledger, segmentBytes: 1 << 20, flushToDisk: false)!;
        running.Lost = (directory, segments, _) => lost.Add((directory, segments));
        var leftOvers = running.TakeLeftOvers();
        Assert.That(leftOvers, Has.Count.EqualTo(3));
        Assert.That(running.ReadLeftOver(leftOvers[0], out _).Select(l => Encoding.UTF8.GetString(l)), Is.EqualTo(new[] { "one", "two", "three" }));

        // A cleaner removes the directory; the running process notices at its idle check, or at its next append.
        Directory.Delete(_root, recursive: true);
        if (idle)
        {
            running.CheckFiles();
        }
        else
        {
            running.Append(Lines("own"), 1);
        }

        Assert.That(running.ReadLeftOver(leftOvers[2], out _).Select(l => Encoding.UTF8.GetString(l)), Is.EqualTo(new[] { "seven" }),
            "a left-over not yet replayed is still read");

        // Killed before any of them is committed: the process after it finds them all.
        running.Dispose();
        using var next = JournalSegments.Claim(_root, Ledger, 1 << 20, false)!;
        var lines = next.TakeLeftOvers().SelectMany(path => next.ReadLeftOver(path, out _)).Select(l => Encoding.UTF8.GetString(l));
        Assert.That(lines, Is.EquivalentTo(new[] { "one", "two", "three", "four", "five", "six", "seven" }.Concat(idle ? [] : ["own"])));
        Assert.That(lost, Has.Count.EqualTo(1));
    }

    [Test]
    public void LeftOversReplayed_AreDeletedWhereTheyAre_AlsoWhenWrittenAgain()
    {
        var killed = JournalSegments.Claim(_root, Ledger, segmentBytes: 10, flushToDisk: false)!;
        killed.Append(Lines("one", "two", "three"), 3);
        killed.Append(Lines("four"), 4);
        killed.Dispose();

        using var running = JournalSegments.Claim(_root, Ledger, segmentBytes: 1 << 20, flushToDisk: false)!;
        var leftOvers = running.TakeLeftOvers();
        running.ForgetLeftOver(leftOvers[0]);
        Assert.That(Files(), Has.Length.EqualTo(1));
        Directory.Delete(_root, recursive: true);
        running.CheckFiles();
        Assert.That(Files(), Has.Length.EqualTo(1), "the left-over not yet replayed is written again");
        running.ForgetLeftOver(leftOvers[1]);
        Assert.That(Files(), Is.Empty, "and deleted once replayed");
    }

    /// <summary>
    /// Session 24: every segment not yet committed was held open (its lock, and its content for a rewrite after a deletion),
    /// and so were all the left-overs taken: one descriptor per 16 MiB of what an outage journaled, without bound. A long
    /// outage under a low descriptor limit (a unit's LimitNOFILE) left the process without descriptors: the journal refused
    /// (acknowledgements on records in memory only), and the writer could not open the connection or file it needs to
    /// commit, which is what deletes segments. Now at most <see cref="JournalSegments.OpenSegments"/> closed segments, and as
    /// many left-overs, keep their handle; the others are read back by their path.
    /// </summary>
    [Test]
    public void HundredsOfSegmentsNotYetCommitted_KeepABoundedNumberOfFilesOpen_AndAreAllReadBackByTheNextProcess()
    {
        const int segments = 300;
        var killed = JournalSegments.Claim(_root, Ledger, segmentBytes: 8, flushToDisk: false)!;
        for (var i = 1; i <= segments; i++)
        {
            killed.Append(Lines($"record{i:D4}"), lastSequence: i);
        }

        Assert.That(Files(), Has.Length.EqualTo(segments));
        Assert.That(OpenFilesIn(_root), Is.LessThanOrEqualTo(JournalSegments.OpenSegments + 2), "descriptors held by the journal that wrote them");
        killed.Dispose();

        using var next = JournalSegments.Claim(_root, Ledger, segmentBytes: 8, flushToDisk: false)!;
        var leftOvers = next.TakeLeftOvers();
        Assert.That(OpenFilesIn(_root), Is.LessThanOrEqualTo(JournalSegments.OpenSegments + 2), "descriptors held for the left-overs taken");
        var read = leftOvers.SelectMany(path => next.ReadLeftOver(path, out _)).Select(line => Encoding.UTF8.GetString(line)).ToList();
        Assert.That(read, Is.EqualTo(Enumerable.Range(1, segments).Select(i => $"record{i:D4}")));
        foreach (var path in leftOvers)
        {
            next.ForgetLeftOver(path);
        }

        Assert.That(Files(), Is.Empty);
    }

    /// <summary>Session 24: with more segments than keep a handle, a deletion writes the open ones again and tells how many were lost.</summary>
    [Test]
    public void SegmentsWithoutAHandle_DeletedWithTheDirectory_AreToldAsLost_TheOthersWrittenAgain()
    {
        var total = JournalSegments.OpenSegments + 10;
        using var journal = JournalSegments.Claim(_root, Ledger, segmentBytes: 8, flushToDisk: false)!;
        var told = new List<(int Written, int Lost)>();
        journal.Lost = (_, written, lost) => told.Add((written, lost));
        for (var i = 1; i <= total; i++)
        {
            journal.Append(Lines($"record{i:D4}"), lastSequence: i);
        }

        Directory.Delete(_root, recursive: true);
        journal.Append(Lines("after"), lastSequence: total + 1);
        Assert.That(told, Is.EqualTo(new[] { (JournalSegments.OpenSegments, 10) }));
        Assert.That(Files(), Has.Length.EqualTo(JournalSegments.OpenSegments + 1));
        journal.Checkpoint(total + 1);
        Assert.That(Files(), Is.Empty);
        Assert.That(journal.Bytes, Is.Zero);
    }

    /// <summary>How many of this process's open descriptors are files in <paramref name="directory"/>.</summary>
    private static int OpenFilesIn(string directory) =>
        new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos().Count(fd =>
        {
            try
            {
                return fd.LinkTarget is { } target && target.StartsWith(directory + "/", StringComparison.Ordinal);
            }
            catch (IOException)
            {
                return false;
            }
        });
}
