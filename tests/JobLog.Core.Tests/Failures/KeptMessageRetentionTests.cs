using JobLog.Failures;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Failures;

[TestFixture]
public sealed class KeptMessageRetentionTests
{
    private static readonly DateTime s_now = new(2026, 12, 1, 12, 0, 0, DateTimeKind.Utc);

    [TestCase(false, new[] { "open-old", "open-new", "resolved-new" })]
    [TestCase(true, new[] { "open-new", "resolved-new" })]
    public async Task Purge_DeletesResolvedFailuresOldMessagesAndOrphans_AndOpenOnesOnlyWhenTold(bool purgeUnresolved, string[] left)
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var names = new Dictionary<Guid, string>();
        await host.QueryAsync(async db =>
        {
            void Add(string name, TaskState state, FailureResolution? resolution, TimeSpan age, bool task = true)
            {
                var id = Guid.NewGuid();
                names[id] = name;
                if (task)
                {
                    db.TaskLogs.Add(new TaskLog { Id = id, Name = name, State = state, Resolution = resolution, DispatchedAt = s_now - age });
                }

                db.KeptMessages.Add(new KeptMessageLog { Id = Guid.NewGuid(), TaskId = id, ConsumerType = "C", InputAddress = "loopback://localhost/q", KeptAt = s_now - age });
            }

            Add("open-old", TaskState.Failed, null, TimeSpan.FromDays(30));
            Add("open-new", TaskState.Failed, null, TimeSpan.FromDays(1));
            Add("resolved-old", TaskState.Failed, FailureResolution.Resolved, TimeSpan.FromDays(30));
            Add("archived-old", TaskState.Failed, FailureResolution.Archived, TimeSpan.FromDays(30));
            Add("succeeded-old", TaskState.Succeeded, null, TimeSpan.FromDays(30));
            Add("resolved-new", TaskState.Failed, FailureResolution.Resolved, TimeSpan.FromDays(1));
            Add("orphan", TaskState.Failed, null, TimeSpan.FromDays(1), task: false);
            return await db.SaveChangesAsync();
        });

        var options = new JobLogRetentionOptions { PurgeUnresolvedKeptMessages = purgeUnresolved };
        await KeptMessageRetention.PurgeAsync(host.Services.GetRequiredService<JobLogContextFactory>(), options, s_now, CancellationToken.None);

        var kept = await host.QueryAsync(db => db.KeptMessages.AsNoTracking().Select(k => k.TaskId).ToListAsync());
        Assert.That(kept.Select(id => names[id]), Is.EquivalentTo(left));
    }
}
