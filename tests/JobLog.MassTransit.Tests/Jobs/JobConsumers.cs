using MassTransit;
using Microsoft.Extensions.Logging;

namespace JobLog.MassTransit.Tests.Jobs;

public sealed record ConvertVideo(string Path, int Seconds);

/// <summary>Reports progress, then runs for <see cref="ConvertVideo.Seconds"/> seconds (cancellable).</summary>
public sealed class ConvertVideoConsumer(ILogger<ConvertVideoConsumer> logger) : IJobConsumer<ConvertVideo>
{
    public async Task Run(JobContext<ConvertVideo> context)
    {
        logger.LogInformation("converting {Path}", context.Job.Path);
        await context.SetJobProgress(1, 2);
        await Task.Delay(TimeSpan.FromSeconds(context.Job.Seconds), context.CancellationToken);
        await context.SetJobProgress(2, 2);
    }
}

public sealed record BrokenJob(int Id);

public sealed class BrokenJobConsumer : IJobConsumer<BrokenJob>
{
    public Task Run(JobContext<BrokenJob> context) => throw new InvalidOperationException($"job {context.Job.Id} cannot run");
}

public sealed record RetriedVideo(string Path, int Seconds);

/// <summary>Runs for <see cref="RetriedVideo.Seconds"/> seconds (cancellable); its job options retry.</summary>
public sealed class RetriedVideoConsumer : IJobConsumer<RetriedVideo>
{
    public Task Run(JobContext<RetriedVideo> context) => Task.Delay(TimeSpan.FromSeconds(context.Job.Seconds), context.CancellationToken);
}

public sealed record PatientJob(int Id);

/// <summary>Always faults; registered with a long retry interval, so its job waits to retry.</summary>
public sealed class PatientJobConsumer : IJobConsumer<PatientJob>
{
    public Task Run(JobContext<PatientJob> context) => throw new InvalidOperationException($"job {context.Job.Id} is not ready yet");
}

public sealed record RenderFrame(int Frame, int Milliseconds);

/// <summary>Runs for <see cref="RenderFrame.Milliseconds"/>; registered with a concurrent job limit of one.</summary>
public sealed class RenderFrameConsumer : IJobConsumer<RenderFrame>
{
    public Task Run(JobContext<RenderFrame> context) => Task.Delay(context.Job.Milliseconds, context.CancellationToken);
}

public sealed record FlakyReport(string Name);

/// <summary>
/// A recurring job's consumer whose second occurrence faults on its first attempt (its job options retry it once). The
/// occurrences are counted per report name by the attempts 0 the job service starts (<c>JobContext.RetryAttempt</c>).
/// </summary>
public sealed class FlakyReportConsumer : IJobConsumer<FlakyReport>
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> s_occurrences = new();

    public Task Run(JobContext<FlakyReport> context)
    {
        if (context.RetryAttempt == 0 && s_occurrences.AddOrUpdate(context.Job.Name, 1, (_, n) => n + 1) == 2)
        {
            throw new InvalidOperationException($"report {context.Job.Name} failed once");
        }

        return Task.CompletedTask;
    }
}
