using JobLog.Internal;
using JobLog.MassTransit.Internal;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Hostile;

/// <summary>
/// The signed parent stamp of outbox writes: a process with the same Data Protection keys reads it back; a stamp of
/// another message, a cut, altered or forged one, or one sealed with other keys reads as no stamp, and never throws.
/// </summary>
public class ParentStampKeyTests
{
    private readonly List<DirectoryInfo> _keyDirectories = [];

    [TearDown]
    public void TearDown()
    {
        foreach (var directory in _keyDirectories.Where(d => d.Exists))
        {
            directory.Delete(recursive: true);
        }

        _keyDirectories.Clear();
    }

    /// <summary>A key ring of its own, as another deployment's (or a process without the application's keys) has.</summary>
    private IDataProtectionProvider IsolatedKeys()
    {
        var directory = new DirectoryInfo(Path.Combine(Path.GetTempPath(), "joblog-stamp-keys-" + Guid.NewGuid().ToString("N")));
        _keyDirectories.Add(directory);
        return new ServiceCollection().AddDataProtection().PersistKeysToFileSystem(directory)
            .Services.BuildServiceProvider().GetRequiredService<IDataProtectionProvider>();
    }

    [Test]
    public void AStamp_IsReadBackByAnotherProcessWithTheSameKeys_ForThatMessageOnly()
    {
        var keys = IsolatedKeys();
        var (run, request, message) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        var stamp = new ParentStampKey(keys).Sign(run, request, message);
        var other = new ParentStampKey(keys);

        Assert.That(other.Check(stamp, message), Is.EqualTo(((Guid?)run, (Guid?)request)));
        Assert.That(other.Check(stamp, Guid.NewGuid()), Is.EqualTo(((Guid?)null, (Guid?)null)), "copied onto another message");
        Assert.That(other.Check(new ParentStampKey(keys).Sign(run, null, message), message), Is.EqualTo(((Guid?)run, (Guid?)null)));
        Assert.That(new ParentStampKey(IsolatedKeys()).Check(stamp, message), Is.EqualTo(((Guid?)null, (Guid?)null)), "other keys");
    }

    [Test]
    public void AlteredCutOrForgedStamps_ReadAsNoStamp()
    {
        var keys = IsolatedKeys();
        var (run, message) = (Guid.NewGuid(), Guid.NewGuid());
        var key = new ParentStampKey(keys);
        var stamp = key.Sign(run, null, message);
        var dot = stamp.LastIndexOf('.');
        var signed = stamp[(dot + 1)..];
        var victim = Guid.NewGuid().ToByteArray();
        var claimed = Convert.ToBase64String([.. victim, .. new byte[32]]).TrimEnd('=').Replace('+', '-').Replace('/', '_');

        string?[] hostile =
        [
            null, "", ".", "..", stamp[..dot], stamp[..^1], stamp + "A", stamp[..dot] + "." + claimed,
            stamp[..dot] + "." + signed[..^1] + (signed[^1] == 'A' ? 'B' : 'A'), stamp[1..], "x" + stamp,
            stamp.Replace('.', '!'), new string('A', 100_000) + "." + signed, "%%%." + signed, stamp[..dot] + ".\u0000\uFFFF",
        ];

        Assert.Multiple(() =>
        {
            foreach (var text in hostile)
            {
                Assert.That(() => key.Check(text, message), Is.EqualTo(((Guid?)null, (Guid?)null)), text is null ? "null" : text[..Math.Min(text.Length, 60)]);
            }
        });
    }

    [Test]
    public void AKeyRingThatFailsOnce_DoesNotStopStampsForTheProcessesLife()
    {
        // Data Protection cannot store its first key (the key directory's parent is a file, as a read-only or
        // mis-mounted volume is): the stamp key cannot be sealed. Once the directory can be made, stamps come back.
        var blocker = Path.Combine(Path.GetTempPath(), "joblog-stamp-blocked-" + Guid.NewGuid().ToString("N"));
        File.WriteAllText(blocker, "not a directory");
        var directory = new DirectoryInfo(Path.Combine(blocker, "keys"));
        var keys = new ServiceCollection().AddDataProtection().PersistKeysToFileSystem(directory)
            .Services.BuildServiceProvider().GetRequiredService<IDataProtectionProvider>();
        var key = new ParentStampKey(keys);
        var (run, message) = (Guid.NewGuid(), Guid.NewGuid());
        try
        {
            Assert.That(() => key.Sign(run, null, message), Throws.Exception, "no key ring yet");
        }
        finally
        {
            File.Delete(blocker);
            _keyDirectories.Add(new DirectoryInfo(blocker));
        }

        Assert.That(key.Check(key.Sign(run, null, message), message), Is.EqualTo(((Guid?)run, (Guid?)null)), "signed once the key ring works");
    }

    [Test]
    public void TheBusesAndTheMediatorOfOneProcess_ShareOneStampKey_SoOneReadsAnothersStampWithoutDataProtection()
    {
        // UseTaskLogging runs TaskLoggingServices.From once per bus (and per bus of a MultiBus) and once per mediator.
        var keys = new CountingKeys(IsolatedKeys());
        using var provider = new ServiceCollection().AddSingleton<IDataProtectionProvider>(keys)
            .AddJobLog(o => o.UseSqlite("Data Source=" + Path.Combine(Path.GetTempPath(), "joblog-stamp-" + Guid.NewGuid().ToString("N") + ".db")))
            .BuildServiceProvider();
        var bus = TaskLoggingServices.From(provider);
        var mediator = TaskLoggingServices.From(provider);
        var (run, message) = (Guid.NewGuid(), Guid.NewGuid());

        var stamp = bus.StampKey.Sign(run, null, message);

        Assert.That(mediator.StampKey.Check(stamp, message), Is.EqualTo(((Guid?)run, (Guid?)null)));
        Assert.That((keys.Protected, keys.Unprotected), Is.EqualTo((1, 0)), "one key sealed once, read back with the key itself");
    }

    /// <summary>Counts what the stamp keys ask of Data Protection.</summary>
    private sealed class CountingKeys(IDataProtectionProvider inner) : IDataProtectionProvider, IDataProtector
    {
        private IDataProtector? _protector;

        public int Protected { get; private set; }

        public int Unprotected { get; private set; }

        public IDataProtector CreateProtector(string purpose)
        {
            _protector = inner.CreateProtector(purpose);
            return this;
        }

        public byte[] Protect(byte[] plaintext)
        {
            Protected++;
            return _protector!.Protect(plaintext);
        }

        public byte[] Unprotect(byte[] protectedData)
        {
            Unprotected++;
            return _protector!.Unprotect(protectedData);
        }
    }

    [Test]
    public void Signing_AllocatesOnlyTheHeadersText()
    {
        var key = new ParentStampKey(IsolatedKeys());
        var (run, message) = (Guid.NewGuid(), Guid.NewGuid());
        var length = key.Sign(run, null, message).Length;

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            key.Sign(run, null, message);
        }

        var perStamp = (GC.GetAllocatedBytesForCurrentThread() - before) / 100;
        Assert.That(perStamp, Is.LessThanOrEqualTo((2 * length) + 32), "a stamp is its string, no more");
    }
}
