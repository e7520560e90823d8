using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>A journal segment a stopped process left that cannot be read back is counted and logged, never lost silently (session 23).</summary>
public class JournalLeftOverLossTests
{
    [Test]
    public async Task LeftOverSegmentThatCannotBeReadBack_IsCountedAndLogged()
    {
        var spool = Path.Combine(Path.GetTempPath(), "joblog-test-spool-" + Guid.NewGuid().ToString("N"));
        var elsewhere = Path.Combine(Path.GetTempPath(), "joblog-test-elsewhere-" + Guid.NewGuid().ToString("N"));
        try
        {
            var lost = 0L;
            using var listener = new System.Diagnostics.Metrics.MeterListener();
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "JobLog" && instrument.Name == "joblog.journal.leftovers_lost")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            };
            listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref lost, value));
            listener.Start();

            var ledger = TestLedger.Sqlite();
            var options = ledger.Apply(new JobLogOptions());
            var name = SpoolFiles.NameOf(LedgerDatabase.For(options.Provider).Identity(options.ConnectionString!));

            // A left-over that is not a file JobLog reads (a symbolic link where a stopped process's segment was).
            Assert.That(SpoolFiles.CheckDirectory(spool, create: true), Is.Null);
            Directory.CreateDirectory(elsewhere);
            await File.WriteAllTextAsync(Path.Combine(elsewhere, "target"), "{}\n");
            File.CreateSymbolicLink(Path.Combine(spool, $"joblog-{name}-3.0000000001.journal"), Path.Combine(elsewhere, "target"));

            await using var host = await LedgerHost.StartAsync(ledger, o => o.SpoolDirectory = spool, s => s.AddFakeLogging());
            // The writer counts, then logs: both are waited for (the log may come a moment after the count).
            await LedgerHost.EventuallyAsync(
                () => Task.FromResult(Interlocked.Read(ref lost) >= 1 && host.Services.GetFakeLogCollector().GetSnapshot().Any(r => r.Id.Id == 1103)),
                TimeSpan.FromSeconds(15),
                "the lost segment is counted and logged");
            Assert.That(Interlocked.Read(ref lost), Is.EqualTo(1), "counted once");
            var errors = host.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Id.Id == 1103).ToList();
            Assert.That(errors, Has.Count.EqualTo(1));
            Assert.That(errors[0].Message, Does.Contain("are lost").And.Contain("symbolic link"));
        }
        finally
        {
            foreach (var directory in new[] { spool, elsewhere })
            {
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, recursive: true);
                }
            }
        }
    }
}
