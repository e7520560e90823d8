using JobLog.Failures;
using JobLog.Querying;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>Open failures (failed, unresolved) grouped by exception and first frame, by message type and by queue.</summary>
public class FailureQueriesTests
{
    private static readonly DateTime Now = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    private const string Declined = "Shop.CardDeclinedException: Declined\n   at MassTransit.X.Y()\n   at Shop.Charge.Handle(ConsumeContext c) in /src/Charge.cs:line 12";
    private const string NoStock = "System.InvalidOperationException: No stock\n   at System.Linq.Enumerable.First()\n   at Shop.Stock.Reserve()";

    private static FilterSource From(params (string Name, string Value)[] values) =>
        name => values.FirstOrDefault(v => v.Name == name).Value;

    [Test]
    public void FailureFilter_ReadsByGroupAndTheTaskListsNames()
    {
        var filter = FailureFilter.Parse(From(("by", "queue"), ("group", "0123456789abcdef"), ("name", "Charge"), ("since", "1h")), Now);

        Assert.That((filter.By, filter.Group, filter.Name, filter.From), Is.EqualTo((FailureGrouping.Queue, "0123456789abcdef", "Charge", Now.AddHours(-1))));
        Assert.That(filter.Describe(), Does.StartWith("by=queue group=0123456789abcdef name=Charge from="));
    }

    [TestCase("by", "colour")]
    [TestCase("group", "nothex")]
    [TestCase("group", "0123456789ABCDEF")]
    public void FailureFilter_WithAValueItCannotRead_Throws(string name, string value) =>
        Assert.Throws<FilterException>(() => FailureFilter.Parse(From((name, value)), Now));

    [TestCase(LedgerProvider.Sqlite)]
    [TestCase(LedgerProvider.PostgreSql)]
    public async Task FailureGroups_GroupOpenFailuresOnly_WithCountsTimesSampleAndTrend(LedgerProvider provider)
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        await host.QueryAsync(db =>
        {
            for (var i = 0; i < 3; i++)
            {
                db.Add(Failed("Charge", "charge-queue", Now.AddHours(-i - 0.5), Declined + "\r\n   extra " + i));
            }

            db.Add(Failed("Reserve", "stock-queue", Now.AddMinutes(-10), NoStock));
            db.Add(Failed("Charge", "charge-queue", Now.AddDays(-3), Declined));
            var resolved = Failed("Charge", "charge-queue", Now.AddMinutes(-1), Declined);
            resolved.Resolution = FailureResolution.Resolved;
            db.Add(resolved);
            var ok = Failed("Charge", "charge-queue", Now.AddMinutes(-1), null);
            ok.State = TaskState.Succeeded;
            db.Add(ok);
            return db.SaveChangesAsync();
        });
        await using var scope = host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();

        var groups = await queries.FailureGroupsAsync(FailureFilter.Parse(From(), Now), Now, CancellationToken.None);

        Assert.That(groups.Total, Is.EqualTo(5));
        Assert.That(groups.Truncated, Is.False);
        Assert.That(groups.Groups.Select(g => (g.Key, g.Count)), Is.EqualTo(new[]
        {
            ("Shop.CardDeclinedException at Shop.Charge.Handle", 4),
            ("System.InvalidOperationException at Shop.Stock.Reserve", 1),
        }));
        var charge = groups.Groups[0];
        Assert.That(charge.Id, Is.EqualTo(new FailureGroupKey(FailureGrouping.Exception, charge.Key).Id));
        Assert.That((charge.FirstSeen, charge.LastSeen), Is.EqualTo((Now.AddDays(-3), Now.AddHours(-0.5))));
        Assert.That(charge.SampleError, Does.StartWith("Shop.CardDeclinedException: Declined"));
        Assert.That(charge.Trend, Has.Count.EqualTo(24));
        Assert.That(charge.Trend.Skip(21), Is.EqualTo(new[] { 1, 1, 1 }));
        Assert.That(charge.Trend.Sum(), Is.EqualTo(3), "the failure of three days ago is out of the 24 h trend");

        var byType = await queries.FailureGroupsAsync(FailureFilter.Parse(From(("by", "type")), Now), Now, CancellationToken.None);
        var byQueue = await queries.FailureGroupsAsync(FailureFilter.Parse(From(("by", "queue"), ("name", "Reserve")), Now), Now, CancellationToken.None);
        Assert.That(byType.Groups.Select(g => (g.Key, g.Count)), Is.EqualTo(new[] { ("Charge", 4), ("Reserve", 1) }));
        Assert.That(byQueue.Groups.Select(g => (g.Key, g.Count)), Is.EqualTo(new[] { ("stock-queue", 1) }));

        var one = FailureFilter.Parse(From(("group", charge.Id), ("limit", "3")), Now);
        var page = await queries.FailuresAsync(one, CancellationToken.None);
        var next = await queries.FailuresAsync(one with { After = Cursor.Parse(page.NextCursor!) }, CancellationToken.None);
        var ids = await queries.OpenFailureIdsAsync(one, 100, CancellationToken.None);
        var search = await queries.OpenFailureIdsAsync(FailureFilter.Parse(From(("q", "NO STOCK")), Now), 100, CancellationToken.None);

        Assert.That(page.Items.Select(r => r.FailedAt), Is.EqualTo(new[] { Now.AddHours(-0.5), Now.AddHours(-1.5), Now.AddHours(-2.5) }));
        Assert.That(page.Items.Select(r => r.GroupId), Is.All.EqualTo(charge.Id));
        Assert.That(next.Items.Select(r => r.FailedAt), Is.EqualTo(new[] { Now.AddDays(-3) }));
        Assert.That(next.NextCursor, Is.Null);
        Assert.That(ids, Is.EqualTo(page.Items.Concat(next.Items).Select(r => r.TaskId)));
        Assert.That(search, Has.Count.EqualTo(1));
    }

    [TestCase(LedgerProvider.Sqlite)]
    [TestCase(LedgerProvider.PostgreSql)]
    public async Task StatedFailureGroupLine_GroupsTheFailure_ButIsNotPartOfTheErrorTextShown(LedgerProvider provider)
    {
        // What the recording path stores for a message holding a forged frame: JobLog's line, then the exception's text.
        const string Shown = "System.InvalidOperationException: \n   at Shop.Payments.Charge(\n   at Shop.Billing.Decline() in /src/B.cs:line 3";
        const string Stored = "[failure group: System.InvalidOperationException at Shop.Billing.Decline]\n" + Shown;
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        var task = Failed("Charge", "charge-queue", Now.AddMinutes(-5), Stored);
        task.ErrorMessage = Stored;
        await host.QueryAsync(db =>
        {
            db.Add(task);
            return db.SaveChangesAsync();
        });
        await using var scope = host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();

        var groups = await queries.FailureGroupsAsync(FailureFilter.Parse(From(), Now), Now, CancellationToken.None);
        var rows = await queries.FailuresAsync(FailureFilter.Parse(From(("group", groups.Groups[0].Id)), Now), CancellationToken.None);
        var detail = await queries.TaskAsync(task.Id, CancellationToken.None);

        Assert.That(groups.Groups.Select(g => g.Key), Is.EqualTo(new[] { "System.InvalidOperationException at Shop.Billing.Decline" }));
        Assert.That(rows.Items.Select(r => r.Signature), Is.EqualTo(new[] { "System.InvalidOperationException at Shop.Billing.Decline" }));
        Assert.That(groups.Groups[0].SampleError, Is.EqualTo(Shown));
        Assert.That(rows.Items.Select(r => r.Error), Is.EqualTo(new[] { Shown }));
        Assert.That(detail!.Runs.Select(r => r.ErrorMessage), Is.EqualTo(new[] { Shown }));
        Assert.That(detail.Task.ErrorMessage, Is.EqualTo(Shown));
        Assert.That(TaskDetailDocument.From(detail).Runs.Select(r => r.ErrorMessage), Is.EqualTo(new[] { Shown }));

        // The Failures page's search reads the text shown, not JobLog's line.
        var marker = await queries.FailureGroupsAsync(FailureFilter.Parse(From(("q", "failure group")), Now), Now, CancellationToken.None);
        var text = await queries.FailureGroupsAsync(FailureFilter.Parse(From(("q", "Shop.Payments.Charge")), Now), Now, CancellationToken.None);
        Assert.That((marker.Total, text.Total), Is.EqualTo((0, 1)));
    }

    private static TaskLog Failed(string name, string queue, DateTime at, string? error)
    {
        var id = Guid.NewGuid();
        return new TaskLog
        {
            Id = id, Name = name, QueueName = queue, DispatchedAt = at.AddSeconds(-1), Start = at.AddSeconds(-1), Stop = at, State = TaskState.Failed,
            Runs =
            [
                new TaskRunLog
                {
                    Id = Guid.NewGuid(), TaskId = id, Name = name, QueueName = queue, ConsumerType = "C", Start = at.AddSeconds(-1), Stop = at,
                    State = TaskRunState.Failed, ErrorMessage = error,
                },
            ],
        };
    }
}
