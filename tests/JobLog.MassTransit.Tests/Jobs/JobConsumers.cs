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
