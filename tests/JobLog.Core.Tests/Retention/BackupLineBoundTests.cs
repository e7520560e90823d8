using System.Text;
using System.Text.Json;
using JobLog.Retention;
using NUnit.Framework;

namespace JobLog.Core.Tests.Retention;

/// <summary>
/// The greatest <see cref="RedactionOptions.MaxBodyLength"/> keeps every row a purge writes restorable: with each of a
/// row's texts at that length and each character escaped as six bytes of JSON (<c>\u0436</c>), the row's line (a run's
/// line holds at least one run) stays within restore's line bound (<see cref="LedgerBackup.MaxLineBytes"/>).
/// </summary>
public class BackupLineBoundTests
{
    private static readonly string Longest = new('ж', RedactionOptions.MaxBodyLengthLimit);

    private static IEnumerable<TestCaseData> WorstLines()
    {
        var task = Filled(new TaskLog { Id = Guid.NewGuid() });
        var run = Filled(new TaskRunLog { Id = Guid.NewGuid(), TaskId = task.Id });
        var output = Filled(new OutputRequestLog { Id = Guid.NewGuid() });
        output.RelatedObjects.Add(Filled(new OutputRequestRelatedObject { Id = Guid.NewGuid(), OutputRequestId = output.Id }));
        yield return new TestCaseData(new LedgerBackup.MarkLine(Task: task)).SetArgDisplayNames("split task");
        yield return new TestCaseData(new LedgerBackup.MarkLine(RunsOf: task.Id, Runs: [run])).SetArgDisplayNames("one run");
        yield return new TestCaseData(Filled(new InputRequestLog { Id = Guid.NewGuid() })).SetArgDisplayNames("input request");
        yield return new TestCaseData(output).SetArgDisplayNames("output request");
        yield return new TestCaseData(Filled(new CommandLog { Id = Guid.NewGuid() })).SetArgDisplayNames("command");
    }

    [TestCaseSource(nameof(WorstLines))]
    public void ARowWithEveryTextAtTheGreatestMaxBodyLength_FitsOneLineOfABackup(object row)
    {
        var bytes = Encoding.UTF8.GetByteCount(JsonSerializer.Serialize(row, row.GetType(), LedgerBackup.JsonOptions));

        TestContext.Out.WriteLine($"{row.GetType().Name}: {bytes:N0} bytes of JSON (bound {LedgerBackup.MaxLineBytes:N0})");
        Assert.That(bytes, Is.GreaterThan(RedactionOptions.MaxBodyLengthLimit * 6), "at least one text at the limit, six bytes a character");
        Assert.That(bytes, Is.LessThanOrEqualTo(LedgerBackup.MaxLineBytes));
    }

    /// <summary>Every settable string property at the limit.</summary>
    private static T Filled<T>(T row)
    {
        foreach (var property in typeof(T).GetProperties().Where(p => p.PropertyType == typeof(string) && p.CanWrite))
        {
            property.SetValue(row, Longest);
        }

        return row;
    }
}
