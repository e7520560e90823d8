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

    [Test]
    public async Task ALoneSurrogateInAUserNameOrACommandName_IsRepaired_AndTheRowKeepsItsTexts()
    {
        // Identity.Name holds what the application put there (a registration form's text, bound without UTF-16 checks):
        // a lone surrogate made PostgreSQL's strict UTF-8 refuse the row, and the degraded second write replaced the
        // request's headers and bodies with markers (docs/reviews/session21-hostile.md, "Found, not fixed").
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync());
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var id = Guid.NewGuid();
        var now = DateTime.UtcNow;
        recorder.Enqueue(new InputRequestRecorded(new InputRequestPayload
        {
            Id = id, Host = "shop.example", Method = "POST", Path = "/orders", RequestTimestamp = now, ResponseTimestamp = now,
            ResponseCode = 201, RequestBody = "{\"sku\":\"A-1\"}", UserId = "ann\uD800x", Ip = "10.0.0.7",
        }));
        // A command's name is its arguments' text (on Windows, UTF-16 arguments can hold a lone surrogate).
        var command = Guid.NewGuid();
        recorder.Enqueue(new CommandRecorded(new CommandPayload
        {
            Id = command, Name = "import \uDC00", Input = "--file orders.csv", Start = now, Stop = now, Output = "3 orders", IsSuccessful = true,
        }));
        await host.FlushAsync();

        var stored = await host.QueryAsync(db => db.InputRequestLogs.AsNoTracking().SingleAsync(r => r.Id == id));
        Assert.That(stored.UserId, Is.EqualTo("ann\uFFFDx"), "the lone surrogate replaced, as in every other text");
        Assert.That(stored.RequestBody, Is.EqualTo("{\"sku\":\"A-1\"}"), "the body is not replaced by the rejected-text marker");
        var storedCommand = await host.QueryAsync(db => db.CommandLogs.AsNoTracking().SingleAsync(c => c.Id == command));
        Assert.That((storedCommand.Name, storedCommand.Output), Is.EqualTo(("import \uFFFD", "3 orders")));
    }
}
