using JobLog.Recording;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

public class LedgerRejectedRecordTests
{
    [Test]
    public async Task TaskRowThePostgresColumnsRefuse_IsStoredWithMarkersInsteadOfDropped()
    {
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync());
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var refused = Guid.NewGuid();
        var ordinary = Guid.NewGuid();

        // A task name longer than the column (a [TaskName] nobody bounded): PostgreSQL refuses the whole batch.
        recorder.Enqueue(new TaskDispatched(new TaskPayload
        {
            Id = refused, Name = new string('n', 300), Input = "Note=kept out", TaskArgs = "[]", TaskKwargs = "{\"Note\":\"kept out\"}",
            DispatchedAt = DateTime.UtcNow,
        }));
        recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = ordinary, Name = "Ordinary", DispatchedAt = DateTime.UtcNow }));
        await host.FlushAsync();

        var tasks = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().ToListAsync());
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { refused, ordinary }), "both rows, the refused one included");
        var stored = tasks.Single(t => t.Id == refused);
        Assert.That(stored.Name, Has.Length.EqualTo(LedgerModel.NameLength));
        Assert.That(stored.Input, Is.EqualTo("[hidden: the database rejected this text]"));
        Assert.That(stored.State, Is.EqualTo(TaskState.Waiting));
    }
}
