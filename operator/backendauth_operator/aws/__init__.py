"""The AWS edge: boto3 clients and the paced call, the AmplifyBackend and Cognito calls, typed answers."""
