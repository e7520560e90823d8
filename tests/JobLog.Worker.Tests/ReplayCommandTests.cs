using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using JobLog.Worker.Cli;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>
/// <c>replay</c>: what stopped processes left in the journal's directory goes to the ledger; what stays is counted for this
/// ledger only and exits non-zero, so that a script or a job runner sees it (session 27's open item).
/// </summary>
[Platform("Linux")]
public class ReplayCommandTests
{
    [Test]
    public async Task Replay_WhileTheDatabaseRefusesWrites_ExitsWith1_CountingThisLedgersSegments_ThenWritesThemOnceItTakesThem()
    {
        var spool = Directory.CreateTempSubdirectory("joblog-replay-").FullName;
        await using var ledger = await TestLedger.PostgresAsync();
        try
        {
            // A process journals three dispatches while the database refuses writes (a full disk: 53100), and dies.
            var host = await LedgerHost.StartAsync(ledger, o =>
            {
                o.Durability = LedgerDurability.Journaled;
                o.SpoolDirectory = spool;
            });
            await RefuseWritesAsync(ledger, refuse: true);
            var recorder = host.Services.GetRequiredService<LedgerRecorder>();
            var ids = new[] { Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid() };
            foreach (var id in ids)
            {
                var sequence = recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
                await recorder.WaitCommittedAsync(sequence).AsTask().WaitAsync(TimeSpan.FromSeconds(120));
            }

            host.Host.Dispose();
            // Another ledger's segment in the same directory is not this ledger's to count.
            await File.WriteAllTextAsync(Path.Combine(spool, "joblog-anotherledger-0.0000000001.journal"), "");
            var settings = new[] { "--JobLog:Database=postgres", "--ConnectionStrings:JobLog=" + ledger.ConnectionString, "--JobLog:SpoolDirectory=" + spool };

            var refused = await RunAsync(["replay", .. settings]);

            var ours = Directory.GetFiles(spool, "joblog-*.journal").Count(f => !Path.GetFileName(f).StartsWith("joblog-anotherledger-", StringComparison.Ordinal));
            Assert.That(ours, Is.Positive, "the test's premise: the dead process's segments are there");
            Assert.That(refused.Exit, Is.EqualTo(1), refused.Output + refused.Error);
            Assert.That(refused.Output, Does.Contain($"left in {spool}: {ours} "));
            Assert.That(refused.Error, Does.Contain("records stay in the journal"));

            await RefuseWritesAsync(ledger, refuse: false);
            var written = await RunAsync(["replay", .. settings]);

            Assert.That(written.Exit, Is.Zero, written.Output + written.Error);
            Assert.That(written.Output, Does.Contain($"left in {spool}: 0 "));
            await using var reader = await LedgerHost.StartAsync(ledger);
            Assert.That(await reader.QueryAsync(db => db.TaskLogs.CountAsync(t => ids.Contains(t.Id))), Is.EqualTo(ids.Length));
        }
        finally
        {
            Directory.Delete(spool, recursive: true);
        }
    }

    private static async Task<(int Exit, string Output, string Error)> RunAsync(string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Cli.Cli.RunAsync(args, CliConsole.Redirected(output, error), recordCommand: false);
        return (exit, output.ToString(), error.ToString());
    }

    /// <summary>Every write of a task row fails as on a full disk (53100), which the writer keeps its batch for.</summary>
    private static async Task RefuseWritesAsync(TestLedger ledger, bool refuse)
    {
        await using var connection = new NpgsqlConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = refuse
            ? $"""
               CREATE FUNCTION joblog_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$;
               CREATE TRIGGER joblog_test_refuse BEFORE INSERT OR UPDATE ON "{LedgerModel.Tasks}" FOR EACH ROW EXECUTE FUNCTION joblog_test_refuse();
               """
            : $"DROP TRIGGER joblog_test_refuse ON \"{LedgerModel.Tasks}\"";
        await command.ExecuteNonQueryAsync();
    }
}
