using JobLog.Storage.Partitioning;

namespace JobLog.Core.Tests.Storage.Partitioning;

/// <summary>
/// Random ids that carry no plausible time, for tests that expect a row in the <c>_undated</c> partition. A plain
/// <c>Guid.NewGuid()</c> is not one about once in 700 draws: its last six bytes, read as a MassTransit <c>NewId</c>'s
/// time (<see cref="PartitionDay"/>), fall between 2020 and 2100, and its row goes to that day (or the default
/// partition). CI failed on that once (<c>StartThenEnd_TwoUpserts_AreOneRowInTheIdsDay(False)</c>, session 18).
/// </summary>
internal static class UndatedIds
{
    /// <summary>A version 4 id whose <see cref="PartitionDay.Of(Guid)"/> is <see cref="PartitionDay.Undated"/>.</summary>
    public static Guid New()
    {
        while (true)
        {
            var id = Guid.NewGuid();
            if (PartitionDay.Of(id) == PartitionDay.Undated)
            {
                return id;
            }
        }
    }
}
