using JobLog.Recording;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// Session 31 (the clean-clone CI run's ConnectionLimitTests failure, diagnosed by the faults helper): each process kept
/// sessions idle in its own pools, the heartbeat's and the sweeper's, which no other process can use. With a small
/// <c>max_connections</c> two processes wanted more sessions than the server had, and a writer whose session was closed,
/// a starting process or anyone else's look waited for minutes. Between its beats and sweeps a process keeps no session
/// but its writer's.
/// </summary>
[NonParallelizable]
public class IdleSessionsTests
{
    [Test]
    [CancelAfter(120_000)]
    public async Task BetweenHeartbeatsAndSweeps_AProcessKeepsNoSessionButItsWriters()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using (var host = await LedgerHost.StartAsync(ledger, o =>
        {
            o.HeartbeatInterval = TimeSpan.FromSeconds(1);
            o.HostTimeout = TimeSpan.FromSeconds(30);
            o.Sweeper.Enabled = true;
            o.Sweeper.Interval = TimeSpan.FromSeconds(1);
        }))
        {
            var recorder = host.Services.GetRequiredService<LedgerRecorder>();
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));

            // Several beats and sweeps; then the fewest sessions of the process seen over a few looks (a beat or a sweep
            // in flight at one look is not what is counted).
            await Task.Delay(TimeSpan.FromSeconds(4));
            var fewest = int.MaxValue;
            var seen = "";
            await using var look = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ledger.ConnectionString) { Pooling = false }.ConnectionString);
            await look.OpenAsync();
            for (var i = 0; i < 20; i++)
            {
                await using var command = new NpgsqlCommand(
                    "SELECT count(*), string_agg(state || ': ' || left(query, 60), ' | ') FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()", look);
                await using var reader = await command.ExecuteReaderAsync();
                await reader.ReadAsync();
                var count = (int)reader.GetInt64(0);
                if (count < fewest)
                {
                    fewest = count;
                    seen = reader.IsDBNull(1) ? "" : reader.GetString(1);
                }

                await Task.Delay(100);
            }

            TestContext.Out.WriteLine($"fewest sessions: {fewest}: {seen}");
            Assert.That(fewest, Is.LessThanOrEqualTo(1), "the writer's session only: " + seen);
        }
    }
}
