using JobLog.Recording;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>Helpers shared by the recorder's and writer's tests.</summary>
internal static class RecorderTestKit
{
    /// <summary>Enqueues the records and waits until the journal has them; returns the first one's sequence.</summary>
    public static async Task<long> EnqueueJournaledAsync(LedgerRecorder recorder, params LedgerRecord[] records)
    {
        var sequences = records.Select(recorder.Enqueue).ToList();
        Assert.That(sequences, Is.All.Positive);
        await recorder.WaitCommittedAsync(sequences[^1]).AsTask().WaitAsync(TimeSpan.FromSeconds(120));
        return sequences[0];
    }
}
