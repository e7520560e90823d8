using JobLog.Failures;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Failures;

/// <summary>An action's note and operator name come from a form or a caller: text the ledger cannot hold never fails the action.</summary>
[TestFixture]
public sealed class FailureActionTextTests
{
    [TestCase(false)]
    [TestCase(true)]
    public async Task Resolve_WithANulOrALoneSurrogateInTheNoteAndName_IsRecordedWithTheTextRepaired(bool postgres)
    {
        await using var host = await LedgerHost.StartAsync(postgres ? await TestLedger.PostgresAsync() : TestLedger.Sqlite());
        var id = Guid.NewGuid();
        await host.QueryAsync(db =>
        {
            db.TaskLogs.Add(new TaskLog { Id = id, Name = "T", State = TaskState.Failed, DispatchedAt = DateTime.UtcNow });
            return db.SaveChangesAsync();
        });
        // A note cut at its bound inside a surrogate pair leaves a lone high surrogate too.
        var note = "fixed\0 upstream \ud800 " + new string('x', FailureActionRequest.MaxNoteLength - 19) + "😀";
        var actions = host.Services.GetRequiredService<IFailureActions>();

        var receipt = await actions.ResolveAsync(new FailureActionRequest([id], "ops\0\udc00") { Note = note, Selection = "task\0" }, FailureResolution.Resolved);

        Assert.That(receipt.Accepted, Is.EqualTo(1));
        var action = await host.QueryAsync(db => db.FailureActions.AsNoTracking().SingleAsync());
        Assert.That(action.Note, Does.StartWith("fixed upstream \ufffd x"));
        Assert.That(action.Note!.Length, Is.LessThanOrEqualTo(FailureActionRequest.MaxNoteLength));
        Assert.That(action.Note.Any(char.IsSurrogate) || action.RequestedBy.Any(char.IsSurrogate), Is.False);
        Assert.That((action.RequestedBy, action.Selection), Is.EqualTo(("ops\ufffd", "task")));
        Assert.That(await host.QueryAsync(db => db.TaskLogs.Where(t => t.Id == id).Select(t => t.Resolution).SingleAsync()), Is.EqualTo(FailureResolution.Resolved));
    }

    [Test]
    public async Task Actions_OfMoreTasksThanOneActionTakes_AreRefusedBeforeAnythingIsRecorded()
    {
        // 40,000 ids were one SQLite parameter each ('too many SQL variables', past 32,766): at most 10,000, as the dashboard.
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var request = new FailureActionRequest(Enumerable.Range(0, 40_000).Select(_ => Guid.NewGuid()).ToList(), "ops");
        var actions = host.Services.GetRequiredService<IFailureActions>();

        Assert.ThrowsAsync<ArgumentException>(() => actions.RetryAsync(request));
        Assert.ThrowsAsync<ArgumentException>(() => actions.ResolveAsync(request, FailureResolution.Resolved));
        Assert.ThrowsAsync<ArgumentException>(() => host.Services.GetRequiredService<IKeptMessageActions>().DeleteKeptMessagesAsync(request));
        Assert.That(await host.QueryAsync(db => db.FailureActions.CountAsync()), Is.Zero);
        Assert.That(await actions.ResolveAsync(request with { TaskIds = request.TaskIds.Take(FailureActionRequest.MaxTasks).ToList() }, FailureResolution.Resolved),
            Has.Property(nameof(FailureActionReceipt.Skipped)).EqualTo(FailureActionRequest.MaxTasks), "10,000 are taken");
    }
}
