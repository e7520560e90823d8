using JobLog.Failures;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>
/// A failure's group names the first frame of the application's code, skipping JobLog's own. Core names its
/// integrations' namespaces one by one (an application's <c>JobLog.MassTransit.Tests</c> is the application's), so this
/// checks that the list covers every type the integrations have: a namespace added to one of them fails here.
/// </summary>
public class OwnFramesTests
{
    [TestCase(typeof(global::MassTransit.TaskLoggingConfigurationExtensions))]
    [TestCase(typeof(Microsoft.AspNetCore.Builder.JobLogDashboardEndpointRouteBuilderExtensions))]
    public void EveryTypeOfAnIntegration_IsJobLogsOwnCode(Type fromIntegration)
    {
        var types = fromIntegration.Assembly.GetTypes()
            .Where(t => !t.IsNested && t.Namespace?.StartsWith("JobLog", StringComparison.Ordinal) == true)
            .ToList();
        var applications = types
            .Select(t => t.Namespace + "." + t.Name.Split('`')[0] + ".Send")
            .Where(FailureSignature.IsApplicationsCode)
            .ToList();

        Assert.That(types, Has.Count.GreaterThan(10), "the integration's JobLog types");
        Assert.That(applications, Is.Empty, "frames of these types would name a failure's group");
    }
}
