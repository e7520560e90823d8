using JobLog.Bench.Scale;
using NUnit.Framework;

namespace JobLog.Core.Tests.Bench;

/// <summary>
/// The scale bench's stale tasks (bench/JobLog.Bench/Scale/ScaleData.cs, compiled in here): by default 100,000 (or a
/// tenth of the tasks), one in 10 at 1 M and one in 100 at 10 M; <c>--sparsity</c> spreads them as a bigger ledger's
/// are, so a 1 M ledger reproduces the 10 M sweep's cost a task (docs/scale.md, "Session 29 (scale)").
/// </summary>
public class ScaleDataTests
{
    private static readonly DateTime Now = new(2026, 3, 11, 8, 0, 0, DateTimeKind.Utc);

    [TestCase(3_000, null, 10, 300)]
    [TestCase(1_000_000, null, 10, 100_000)]
    [TestCase(10_000_000, null, 100, 100_000)]
    [TestCase(1_000_000, 100, 100, 10_000)]
    [TestCase(1_000_003, 100, 100, 10_000)]
    [TestCase(1_000_004, 100, 100, 10_001)]
    public void StaleTasks_AreOneInSparsity_AndCountedAsTheFillMakesThem(int tasks, int? sparsity, int spacing, int stale)
    {
        var data = new ScaleData(tasks, 10, Now, sparsity);
        var made = new List<int>();
        for (var i = 0; i < tasks; i++)
        {
            if (data.StateOf(i) is TaskState.Waiting or TaskState.Active)
            {
                made.Add(i);
            }
        }

        Assert.That((data.Sparsity, data.Stale, made.Count), Is.EqualTo((spacing, stale, stale)));
        Assert.That(made.Zip(made.Skip(1), (a, b) => b - a), Is.All.EqualTo(spacing));
    }

    [Test]
    public void SparseStaleTasks_AreActiveWithOneActiveRun_AsTheDefaultBacklogs()
    {
        // An even spacing puts every stale task on an odd index: ACTIVE, as the default's (1 M: one in 10) are.
        var data = new ScaleData(100_000, 10, Now, 100);
        var (task, runs) = data.Task(103);
        Assert.That((task[Array.IndexOf(ScaleData.TaskColumns, "State")], task[Array.IndexOf(ScaleData.TaskColumns, "Stop")], runs.Count), Is.EqualTo(((int)TaskState.Active, (object?)null, 1)));
        Assert.That(runs[0][Array.IndexOf(ScaleData.RunColumns, "State")], Is.EqualTo((int)TaskRunState.Active));
        Assert.That(new ScaleData(100_000, 10, Now).Task(13).Task[Array.IndexOf(ScaleData.TaskColumns, "State")], Is.EqualTo((int)TaskState.Active));
        Assert.That(data.StateOf(13), Is.Not.AnyOf(TaskState.Waiting, TaskState.Active), "one in ten is the default's, not this ledger's");
    }
}
