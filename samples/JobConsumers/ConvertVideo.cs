using MassTransit;

namespace JobLog.Samples.JobConsumers;

/// <summary>The job: convert a video file, in <see cref="Steps"/> steps of a second each.</summary>
public sealed record ConvertVideo(string Path, int Steps);

/// <summary>A job consumer: runs outside the message's consume, reports progress, honours cancellation.</summary>
public sealed class ConvertVideoConsumer(ILogger<ConvertVideoConsumer> logger) : IJobConsumer<ConvertVideo>
{
    public async Task Run(JobContext<ConvertVideo> context)
    {
        logger.LogInformation("Converting {Path} (attempt {Attempt})", context.Job.Path, context.RetryAttempt);
        for (var step = 1; step <= context.Job.Steps; step++)
        {
            await Task.Delay(TimeSpan.FromSeconds(1), context.CancellationToken);
            await context.SetJobProgress(step, context.Job.Steps);
        }

        logger.LogInformation("Converted {Path}", context.Job.Path);
    }
}
